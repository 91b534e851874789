"""What `driftline up` runs for a profile, in start order: servers, flows, gateway.

Each `Unit` is a group of processes started, stopped and restarted together: a server, the
processes of one Bytewax cluster (when one dies the others exit too), the gateway (uvicorn
with its workers), or the retraining job (`driftline retrain`, one process). A unit's
processes are built anew at each start, so a flow restarted after the broker's log was lost
gets a fresh recovery store.

| profile | servers | flows | gateway |
|---|---|---|---|
| embedded | log store, broker (tansu on it, or in memory) | 1 process each | 1 process |
| cluster | + object store, PostgreSQL, MLflow server | 2-process clusters | 2 workers |
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broker.clients import broker_reachable, ensure_topics, epoch
from driftline.settings import Settings
from servers import logstore, mlflow_server, objectstore, postgres, tansu
from servers.recipe import Recipe

FLOWS = ("inference", "lakewriter", "feedback", "ab", "monitor", "rollout")
GATEWAY = "gateway"
BROKER, LOGSTORE = "broker", "logstore"


@dataclass(frozen=True)
class Spec:
    """One process of a unit."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    cwd: Path | None = None
    metrics: str | None = None
    """URL of its Prometheus metrics, if it serves any."""


@dataclass
class Unit:
    name: str
    build: Callable[[], list[Spec]]
    ready: Callable[[], bool] = lambda: True
    prepare: Callable[[], None] = lambda: None
    server: bool = False
    """Servers start before, and stop after, the flows and the gateway."""


def _spec(recipe: Recipe) -> Spec:
    return Spec(recipe.name, recipe.argv, recipe.env, recipe.user, recipe.cwd, recipe.metrics)


def recovery_dir(settings: Settings, flow_name: str, log_epoch: str) -> Path:
    """A flow's recovery store for the broker's current log, created on first use."""
    from bytewax.recovery import init_db_dir

    path = settings.recovery_root / log_epoch / flow_name
    if not path.exists():
        path.mkdir(parents=True)
        init_db_dir(path, 1)
    return path


SHARDED_FLOWS = ("feedback", "ab")
"""Flows whose Bytewax state is keyed by id shard (`driftline.shards`): 16,384 keys."""


def flow_command(
    settings: Settings, flow_name: str, log_epoch: str
) -> tuple[list[str], dict[str, str]]:
    """`python -m bytewax.run flows.<name>:flow` with recovery on, and its environment.

    >>> import tempfile
    >>> from driftline.settings import load
    >>> s = load({}, home=tempfile.mkdtemp())
    >>> [flow_command(s, f, "0")[1]["BYTEWAX_SNAPSHOT_INTERVAL"] for f in ("inference", "ab")]
    ['1', '10']
    """
    flows = settings.flows
    interval = (
        flows.sharded_snapshot_seconds if flow_name in SHARDED_FLOWS else flows.snapshot_seconds
    )
    env = {
        "BYTEWAX_RECOVERY_DIRECTORY": str(recovery_dir(settings, flow_name, log_epoch)),
        "BYTEWAX_SNAPSHOT_INTERVAL": str(interval),
        "BYTEWAX_RECOVERY_BACKUP_INTERVAL": "0",
    }
    return [sys.executable, "-m", "bytewax.run", f"flows.{flow_name}:flow"], env


def metrics_port(settings: Settings, flow_name: str, process: int = 0) -> int | None:
    """Where process `process` of a flow serves Prometheus metrics: `DRIFTLINE_METRICS_PORT_BASE`
    + 10 x the flow's index in `FLOWS` + the process index; None when metrics are off.

    >>> from driftline.settings import load
    >>> metrics_port(load({}), "inference"), metrics_port(load({}), "monitor", 1)
    (9400, 9441)
    """
    base = settings.flows.metrics_port_base
    if not base:
        return None
    return base + settings.flows.METRICS_PORTS_PER_FLOW * FLOWS.index(flow_name) + process


def metrics_env(settings: Settings, flow_name: str, process: int = 0) -> dict[str, str]:
    """The environment that makes `bytewax.run` serve `/metrics` (its dataflow API server:
    Bytewax's own step metrics and every Python metric of the process) on the flow's port.

    Bytewax binds it on 0.0.0.0, and writes the dataflow's graph to
    `<home>/run/dataflow/<flow>[-<process>]/dataflow.json` (by default it would write to the
    working folder). A port already taken costs only the endpoint: the flow runs on."""
    port = metrics_port(settings, flow_name, process)
    if port is None:
        return {}
    suffix = f"-{process}" if settings.flows.processes > 1 else ""
    graph = settings.home / "run" / "dataflow" / f"{flow_name}{suffix}"
    graph.mkdir(parents=True, exist_ok=True)
    return {
        "BYTEWAX_DATAFLOW_API_ENABLED": "true",
        "BYTEWAX_DATAFLOW_API_PORT": str(port),
        "BYTEWAX_DATAFLOW_API_CACHE_PATH": str(graph),
    }


def metrics_url(settings: Settings, flow_name: str, process: int = 0) -> str | None:
    port = metrics_port(settings, flow_name, process)
    return None if port is None else f"http://127.0.0.1:{port}/metrics"


def flow_specs(settings: Settings, flow_name: str, log_epoch: str) -> list[Spec]:
    """The processes of one flow: one, or a Bytewax cluster sharing one address list."""
    argv, env = flow_command(settings, flow_name, log_epoch)
    count = settings.flows.processes

    def spec(name: str, argv: list[str], i: int) -> Spec:
        own = env | metrics_env(settings, flow_name, i)
        return Spec(name, argv, own, metrics=metrics_url(settings, flow_name, i))

    if count == 1:
        return [spec(flow_name, argv, 0)]
    first = settings.flows.port_base + FLOWS.index(flow_name) * count
    addresses = ";".join(f"127.0.0.1:{first + i}" for i in range(count))
    return [
        spec(f"{flow_name}-{i}", [*argv, "-i", str(i), "-a", addresses], i) for i in range(count)
    ]


def gateway_spec(settings: Settings | None = None) -> Spec:
    """The gateway serves its own metrics at `/metrics` on its port (every worker's, summed)."""
    argv = [sys.executable, "-m", "app.cli", "gateway"]
    if settings is None:
        return Spec(GATEWAY, argv)
    host = settings.gateway.host
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return Spec(GATEWAY, argv, metrics=f"http://{host}:{settings.gateway.port}/metrics")


# --- retraining on drift (issue 13, part 3) ---
RETRAIN = "retrain"


def retrain_unit() -> Unit:
    """`driftline retrain`: turns `retrain.requests` into shadow challengers."""
    return Unit(RETRAIN, lambda: [Spec(RETRAIN, [sys.executable, "-m", "app.cli", RETRAIN])])


@dataclass
class Topology:
    """The units of a profile, and the broker log's epoch the flows run in."""

    settings: Settings
    units: list[Unit] = field(default_factory=list)
    log_epoch: str | None = None

    def broker_ready(self) -> bool:
        """Topics exist and the epoch is known; True when the epoch changed (flows and gateway
        must start again, on fresh recovery stores)."""
        ensure_topics(self.settings)
        current = epoch(self.settings)
        changed = self.log_epoch is not None and current != self.log_epoch
        self.log_epoch = current
        return changed

    def flow_unit(self, name: str) -> Unit:
        def build() -> list[Spec]:
            assert self.log_epoch is not None, "flows start after the broker"
            return flow_specs(self.settings, name, self.log_epoch)

        return Unit(name, build)


def topology(settings: Settings) -> Topology:
    s, servers = settings, settings.servers
    top = Topology(settings)
    home = s.home
    local_broker = s.kafka.broker_list[0]
    if servers.profile == "cluster":
        store = objectstore.recipe(home / "objectstore", servers.objectstore_port)
        top.units.append(Unit("objectstore", lambda: [_spec(store)], store.ready, server=True))
        pg_dir = home / "postgres"
        pg = postgres.recipe(pg_dir, servers.postgres_port)
        top.units.append(
            Unit(
                "postgres",
                lambda: [_spec(pg)],
                pg.ready,
                prepare=lambda: postgres.prepare(pg_dir),
                server=True,
            )
        )
        ml = mlflow_server.recipe(
            servers.mlflow_port, servers.postgres_port, servers.objectstore_port
        )
        top.units.append(Unit("mlflow", lambda: [_spec(ml)], ml.ready, server=True))
    if not broker_reachable(s, timeout=0.5):  # else an external broker: use it as it is
        if servers.broker_storage == "disk":
            log = logstore.recipe(
                home / "logstore",
                servers.logstore_port,
                servers.broker_retention_seconds,
                servers.broker_max_batches,
                servers.broker_keep_read_batches,
            )
            top.units.append(Unit(LOGSTORE, lambda: [_spec(log)], log.ready, server=True))
        broker = tansu.recipe(local_broker, servers.broker_storage, servers.logstore_port)
        top.units.append(
            Unit(
                BROKER,
                lambda: [_spec(broker)],
                lambda: broker.ready() and broker_reachable(s, timeout=0.5),
                server=True,
            )
        )
    top.units += [top.flow_unit(name) for name in FLOWS]
    top.units.append(retrain_unit())
    top.units.append(Unit(GATEWAY, lambda: [gateway_spec(settings)]))
    return top


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of every child: this one, with the settings spelled out."""
    return dict(os.environ) | settings.to_env()
