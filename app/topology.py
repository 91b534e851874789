"""What `driftline up` runs for a profile, in start order: servers, flows, gateway.

Each `Unit` is a group of processes started, stopped and restarted together: a server, the
processes of one Bytewax cluster (when one dies the others exit too), or the gateway (uvicorn
with its workers). A unit's processes are built anew at each start, so a flow restarted after
the broker's log was lost gets a fresh recovery store.

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

FLOWS = ("inference", "lakewriter", "feedback", "ab", "monitor")
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


@dataclass
class Unit:
    name: str
    build: Callable[[], list[Spec]]
    ready: Callable[[], bool] = lambda: True
    prepare: Callable[[], None] = lambda: None
    server: bool = False
    """Servers start before, and stop after, the flows and the gateway."""


def _spec(recipe: Recipe) -> Spec:
    return Spec(recipe.name, recipe.argv, recipe.env, recipe.user, recipe.cwd)


def recovery_dir(settings: Settings, flow_name: str, log_epoch: str) -> Path:
    """A flow's recovery store for the broker's current log, created on first use."""
    from bytewax.recovery import init_db_dir

    path = settings.recovery_root / log_epoch / flow_name
    if not path.exists():
        path.mkdir(parents=True)
        init_db_dir(path, 1)
    return path


def flow_command(
    settings: Settings, flow_name: str, log_epoch: str
) -> tuple[list[str], dict[str, str]]:
    """`python -m bytewax.run flows.<name>:flow` with recovery on, and its environment."""
    env = {
        "BYTEWAX_RECOVERY_DIRECTORY": str(recovery_dir(settings, flow_name, log_epoch)),
        "BYTEWAX_SNAPSHOT_INTERVAL": f"{settings.flows.snapshot_seconds:g}",
        "BYTEWAX_RECOVERY_BACKUP_INTERVAL": "0",
    }
    return [sys.executable, "-m", "bytewax.run", f"flows.{flow_name}:flow"], env


def flow_specs(settings: Settings, flow_name: str, log_epoch: str) -> list[Spec]:
    """The processes of one flow: one, or a Bytewax cluster sharing one address list."""
    argv, env = flow_command(settings, flow_name, log_epoch)
    count = settings.flows.processes
    if count == 1:
        return [Spec(flow_name, argv, env)]
    first = settings.flows.port_base + FLOWS.index(flow_name) * count
    addresses = ";".join(f"127.0.0.1:{first + i}" for i in range(count))
    return [
        Spec(f"{flow_name}-{i}", [*argv, "-i", str(i), "-a", addresses], env) for i in range(count)
    ]


def gateway_spec() -> Spec:
    return Spec(GATEWAY, [sys.executable, "-m", "app.cli", "gateway"])


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
    top.units.append(Unit(GATEWAY, lambda: [gateway_spec()]))
    return top


def child_environment(settings: Settings) -> dict[str, str]:
    """The environment of every child: this one, with the settings spelled out."""
    return dict(os.environ) | settings.to_env()
