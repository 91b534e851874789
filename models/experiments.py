"""Durable experiment definitions: a small SQLite file under the data folder.

SQLite in WAL mode lets the gateway and the CLI write while the inference flow reads; the flow
re-reads the store every `DRIFTLINE_EXPERIMENT_REFRESH_SECONDS` (`ExperimentCache`), so an edit
reaches it without a restart. The default experiment (`driftline.ab.default`) is built from the
MLflow registry when none is stored. The inference flow, which serves it, stores it once it has
two arms (so a third registered model does not reshuffle it); reading it (`current`, as the
gateway and `driftline experiments list` do) never writes.

Example
-------
>>> import tempfile, pathlib
>>> from driftline.ab import Arm, Experiment
>>> store = ExperimentStore(pathlib.Path(tempfile.mkdtemp()) / "experiments.sqlite")
>>> store.put(Experiment(name="e", arms=(Arm(name="A", model="m", alias="champion", weight=1),)))
>>> [e.name for e in store.list()], store.get("e").arms[0].model, store.delete("e")
(['e'], 'm', True)
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from driftline.ab import Experiment
from driftline.ab.default import Registered, default_experiment
from driftline.clock import Clock
from driftline.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "ExperimentCache",
    "ExperimentStore",
    "connect",
    "current",
    "missing_models",
    "missing_versions",
    "prepare",
    "registered",
]


class ExperimentStore:
    """Experiments by name, one JSON row each, in a SQLite file (WAL, safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        prepare(
            path,
            "CREATE TABLE IF NOT EXISTS experiments ("
            " name TEXT PRIMARY KEY, body TEXT NOT NULL,"
            " updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))",
        )

    @classmethod
    def of(cls, settings: Settings) -> ExperimentStore:
        return cls(settings.experiments_db)

    def _connect(self) -> AbstractContextManager[sqlite3.Connection]:
        return connect(self.path)

    def list(self) -> list[Experiment]:
        with self._connect() as con:
            rows = con.execute("SELECT body FROM experiments ORDER BY name").fetchall()
        return [Experiment.model_validate_json(body) for (body,) in rows]

    def get(self, name: str) -> Experiment | None:
        with self._connect() as con:
            row = con.execute("SELECT body FROM experiments WHERE name = ?", [name]).fetchone()
        return None if row is None else Experiment.model_validate_json(row[0])

    def put(self, experiment: Experiment) -> None:
        """Create or replace the experiment of that name."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO experiments (name, body) VALUES (?, ?) ON CONFLICT (name) DO UPDATE"
                " SET body = excluded.body, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                [experiment.name, experiment.model_dump_json()],
            )
        log.info("experiment stored", extra={"experiment": experiment.name})

    def delete(self, name: str) -> bool:
        with self._connect() as con:
            deleted = con.execute("DELETE FROM experiments WHERE name = ?", [name]).rowcount
        return bool(deleted)


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the experiments' SQLite file that commits, or rolls back on error."""
    con = sqlite3.connect(path, timeout=10)
    try:
        with con:
            yield con
    finally:
        con.close()


def prepare(path: Path, table_ddl: str) -> None:
    """Create the file (in WAL mode, so processes read while one writes) and one table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as con:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(table_ddl)


Registry = Callable[[Settings], Registered]


def registered(settings: Settings) -> Registered:
    """Registered model names, with their aliases and latest version."""
    from models import registry

    return registry.registered(settings)


class ExperimentCache:
    """What the inference flow routes by: the stored experiments, re-read every few seconds."""

    def __init__(
        self,
        settings: Settings,
        store: ExperimentStore | None = None,
        registry: Registry = registered,
        clock: Clock = time.monotonic,
    ) -> None:
        self._settings = settings
        self._store = store  # opened on first use: building a flow creates no file
        self._registry = registry
        self._clock = clock
        self._loaded_at: float | None = None
        self._experiments: dict[str, Experiment] = {}

    def get(self, name: str | None) -> Experiment | None:
        """The experiment called `name` (the default one when None), or None if unknown."""
        now = self._clock()
        ab = self._settings.ab
        if self._loaded_at is None or now - self._loaded_at >= ab.experiment_refresh_seconds:
            self._reload()
            self._loaded_at = now
        return self._experiments.get(name or ab.default_experiment)

    def _reload(self) -> None:
        if self._store is None:
            self._store = ExperimentStore.of(self._settings)
        fallback = self._experiments.get(self._settings.ab.default_experiment)
        self._experiments = current(
            self._settings, self._store, self._registry, fallback, persist=True
        )


def current(
    settings: Settings,
    store: ExperimentStore,
    registry: Registry = registered,
    fallback: Experiment | None = None,
    persist: bool = False,
) -> dict[str, Experiment]:
    """Stored experiments plus the default one; with `persist` (the inference flow, which
    serves it) the default is stored as soon as it has two arms. Without it this only reads.

    When the registry cannot be read, `fallback` (the default served so far) stays in place.
    """
    experiments = {e.name: e for e in store.list()}
    name = settings.ab.default_experiment
    if name not in experiments:
        default: Experiment | None
        try:
            default, complete = default_experiment(settings.models, settings.ab, registry(settings))
        except Exception:  # registry unreachable: keep serving what we had
            log.exception("cannot build the default experiment")
            default, complete = fallback, False
        if persist and complete and default is not None:
            store.put(default)
        if default is not None:
            experiments[name] = default
    return experiments


def missing_models(settings: Settings, experiment: Experiment) -> list[str]:
    """Arms whose model, alias or version is not registered, as readable reasons."""
    from models import registry

    missing = []
    for arm in experiment.arms:
        if arm.alias is not None:
            if registry.alias_version(settings, arm.model, arm.alias) is None:
                missing.append(f"arm {arm.name!r}: no model {arm.model!r} with alias {arm.alias!r}")
        elif not registry.has_version(settings, arm.model, str(arm.version)):
            missing.append(f"arm {arm.name!r}: no model {arm.model!r} version {arm.version!r}")
    return missing


def missing_versions(settings: Settings, refs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Of (model name, version) pairs, those the registry does not have."""
    from models import registry

    return [
        (name, version)
        for name, version in refs
        if not registry.has_version(settings, name, version)
    ]
