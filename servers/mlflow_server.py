"""The MLflow tracking server, for the cluster profile: runs and registry in PostgreSQL, model
artifacts in the object store, served through the server (`--serve-artifacts`), so clients need
no S3 credentials. Job execution is off: it doubles the server's memory and driftline runs no
MLflow jobs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from servers.objectstore import client_env
from servers.recipe import Recipe, http_get


def recipe(port: int, postgres_port: int, objectstore_port: int) -> Recipe:
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    backend = f"postgresql+psycopg://postgres@127.0.0.1:{postgres_port}/mlflow"
    argv = [
        mlflow,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        "s3://mlflow/artifacts",
        "--serve-artifacts",
        "--workers",
        "1",
    ]
    env = client_env(objectstore_port) | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return Recipe("mlflow", argv, env=env, ready=lambda: _healthy(port))


def tracking_uri(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _healthy(port: int) -> bool:
    try:
        return http_get(f"{tracking_uri(port)}/health", timeout=1)[0] == 200
    except OSError:
        return False
