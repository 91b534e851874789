-- The DuckLake catalog lives beside MLflow's store in the same PostgreSQL server.
CREATE DATABASE lake OWNER driftline;
