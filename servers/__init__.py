"""The servers `driftline up` runs on one machine, as recipes: how to prepare, start and probe
each (the supervisor in `app.supervisor` runs them and restarts them when they die).

- `objectstore`: S3-compatible storage on local disk (s3rver): broker storage, lake files,
  MLflow artifacts
- `tansu`: the Kafka-compatible broker, on that storage (or in memory)
- `postgres`: PostgreSQL for the DuckLake catalog and the MLflow store (cluster profile)
- `mlflow_server`: the MLflow tracking server (cluster profile)
"""

from servers.recipe import Recipe

__all__ = ["Recipe"]
