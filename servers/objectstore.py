"""S3-compatible object storage on local disk, for the cluster profile: s3rver, from npm
(`servers/node`). It holds the lake's Parquet files and MLflow's artifacts in one folder that
survives restarts and its own `kill -9`. It accepts the key id and secret `S3RVER` only.

Not the broker's log: s3rver ignores conditional writes, which tansu relies on (measured: 292
of 400 acknowledged messages lost with 4 concurrent producers). `servers.logstore` serves that.

s3rver 3.7.1 encrypts its listing continuation tokens with DES, which Node 17+ refuses unless
the legacy OpenSSL provider is on: without it any listing of more than 1000 keys fails, and the
broker then reads nothing (measured; see ../shared/PLATFORM.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from servers.recipe import Recipe, port_open

KEY_ID = SECRET = "S3RVER"
BUCKETS = ("lake", "mlflow")
PROGRAM = Path(__file__).parent / "node" / "node_modules" / "s3rver" / "bin" / "s3rver.js"


def recipe(data_dir: Path, port: int) -> Recipe:
    node = shutil.which("node")
    if node is None or not PROGRAM.exists():
        raise RuntimeError("s3rver is not installed: run `make install` (needs node and npm)")
    data_dir.mkdir(parents=True, exist_ok=True)
    buckets = [arg for name in BUCKETS for arg in ("--configure-bucket", name)]
    argv = [node, str(PROGRAM), "-d", str(data_dir), "-a", "127.0.0.1", "-p", str(port)]
    return Recipe(
        "objectstore",
        [*argv, "--silent", *buckets],
        env={"NODE_OPTIONS": "--openssl-legacy-provider"},
        ready=lambda: port_open("127.0.0.1", port),
    )


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def client_env(port: int) -> dict[str, str]:
    """The variables an S3 client (boto3 inside the MLflow server) needs to reach it."""
    return {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint(port),
        "MLFLOW_S3_ENDPOINT_URL": endpoint(port),
    }
