"""Durable experiment definitions: a small SQLite file under the data folder.

The local broker keeps topics in memory only, so experiments live in a file that survives
restarts. SQLite in WAL mode lets the gateway and the CLI write while the inference flow reads;
the flow re-reads the store every `DRIFTLINE_EXPERIMENT_REFRESH_SECONDS` (`ExperimentCache`), so
an edit reaches it without a restart.

The default experiment (`DRIFTLINE_DEFAULT_EXPERIMENT`) is built from the registry when none is
stored, as the reference does: the served model (`default_model@default_alias`) against the
registered model most different from it, 50/50. Models are named `<task>_<algorithm>_<features>`,
so "most different" is the model sharing the fewest name parts. While only one model is
registered the default has a single arm and is not stored, so it grows to two arms by itself
once a second model appears.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from driftline.ab.experiment import Arm, Experiment
from driftline.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "ExperimentCache",
    "ExperimentStore",
    "current",
    "default_experiment",
    "missing_models",
    "most_different",
]


class ExperimentStore:
    """Experiments by name, one JSON row each, in a SQLite file (WAL, safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS experiments ("
                " name TEXT PRIMARY KEY, body TEXT NOT NULL,"
                " updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            )

    @classmethod
    def of(cls, settings: Settings) -> ExperimentStore:
        return cls(settings.experiments_db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=10)
        try:
            with con:  # commits, or rolls back on error
                yield con
        finally:
            con.close()

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


def most_different(served: str, candidates: Sequence[str]) -> str | None:
    """The candidate sharing the fewest `_`-separated name parts with `served` (ties: by name).

    >>> most_different("s_logreg_tfidf", ["s_logreg_minilm", "s_xgboost_minilm", "s_xgb_tfidf"])
    's_xgboost_minilm'
    """
    parts = set(served.split("_"))
    others = sorted(c for c in candidates if c != served)
    if not others:
        return None
    return min(others, key=lambda c: len(parts & set(c.split("_"))))


Registry = Callable[[Settings], dict[str, tuple[set[str], str | None]]]


def _registered(settings: Settings) -> dict[str, tuple[set[str], str | None]]:
    """Registered model names, with their aliases and latest version."""
    from models import registry  # mlflow imports slowly: only when needed

    models = {}
    for model in registry.client(settings).search_registered_models():
        versions = [int(v.version) for v in model.latest_versions or []]
        latest = str(max(versions)) if versions else None
        models[model.name] = (set((model.aliases or {}).keys()), latest)
    return models


def default_experiment(
    settings: Settings, registered: Registry = _registered
) -> tuple[Experiment, bool]:
    """The default experiment from the registry, and whether it is complete enough to store."""
    served = Arm(
        name=settings.default_model,
        model=settings.default_model,
        alias=settings.default_alias,
        weight=0.5,
    )
    models = {name: found for name, found in registered(settings).items() if any(found)}
    other = most_different(settings.default_model, list(models))
    arms: tuple[Arm, ...] = (served,)
    if other is not None:
        aliases, latest = models[other]
        if settings.default_alias in aliases or not latest:
            alias = settings.default_alias if settings.default_alias in aliases else min(aliases)
            address = {"alias": alias}
        else:
            address = {"version": latest}
        arms = (served, Arm(name=other, model=other, weight=0.5, **address))
    description = "served model vs the most different registered model, 50/50"
    experiment = Experiment(name=settings.default_experiment, arms=arms, description=description)
    return experiment, len(arms) > 1


class ExperimentCache:
    """What the inference flow routes by: the stored experiments, re-read every few seconds."""

    def __init__(
        self,
        settings: Settings,
        store: ExperimentStore | None = None,
        registered: Registry = _registered,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._store = store  # opened on first use: importing a flow creates no file
        self._registered = registered
        self._clock = clock
        self._loaded_at: float | None = None
        self._experiments: dict[str, Experiment] = {}

    def get(self, name: str | None) -> Experiment | None:
        """The experiment called `name` (the default one when None), or None if unknown."""
        now = self._clock()
        if (
            self._loaded_at is None
            or now - self._loaded_at >= self._settings.experiment_refresh_seconds
        ):
            self._reload()
            self._loaded_at = now
        return self._experiments.get(name or self._settings.default_experiment)

    def _reload(self) -> None:
        if self._store is None:
            self._store = ExperimentStore.of(self._settings)
        self._experiments = current(
            self._settings, self._store, self._registered, self._experiments.get(self._default)
        )

    @property
    def _default(self) -> str:
        return self._settings.default_experiment


def current(
    settings: Settings,
    store: ExperimentStore,
    registered: Registry = _registered,
    fallback: Experiment | None = None,
) -> dict[str, Experiment]:
    """Stored experiments plus the default one, stored as soon as it has two arms.

    When the registry cannot be read, `fallback` (the default served so far) stays in place.
    """
    experiments = {e.name: e for e in store.list()}
    name = settings.default_experiment
    if name not in experiments:
        default: Experiment | None
        try:
            default, complete = default_experiment(settings, registered)
        except Exception:  # registry unreachable: keep serving what we had
            log.exception("cannot build the default experiment")
            default, complete = fallback, False
        if complete and default is not None:
            store.put(default)
        if default is not None:
            experiments[name] = default
    return experiments


def missing_models(settings: Settings, experiment: Experiment) -> list[str]:
    """Arms whose model, alias or version is not registered, as readable reasons."""
    from mlflow.exceptions import MlflowException

    from models import registry

    missing = []
    for arm in experiment.arms:
        if arm.alias is not None:
            if registry.alias_version(settings, arm.model, arm.alias) is None:
                missing.append(f"arm {arm.name!r}: no model {arm.model!r} with alias {arm.alias!r}")
            continue
        try:
            registry.client(settings).get_model_version(arm.model, arm.version)
        except MlflowException:
            missing.append(f"arm {arm.name!r}: no model {arm.model!r} version {arm.version!r}")
    return missing
