"""Applying rollout decisions: the experiment's weights, the `champion` alias, and a log of them.

The rollout flow (`flows.rollout`) decides; this module carries a decision out, in the same
stores the API uses, so that carrying it out twice changes nothing:

1. the experiment's arm weights are set to the decision's challenger share (`weighted`), in the
   `ExperimentStore` the gateway writes and the inference flow re-reads, unless the experiment
   was replaced since (another rollout id) or a later decision of the rollout is already logged
   (a replayed, older decision must not undo a newer one);
2. a `complete` decision moves the registry alias `DRIFTLINE_DEFAULT_ALIAS` (`champion`) of the
   challenger's model to its version, unless it already points there;
3. the decision is logged by id in the experiments' SQLite file (`RolloutLog`), which is what
   `GET /experiments/{name}/rollout` and `driftline experiments rollout NAME show` read.

Example
-------
>>> import tempfile, pathlib
>>> from datetime import UTC, datetime
>>> from driftline.topics import RolloutDecision
>>> log = RolloutLog(pathlib.Path(tempfile.mkdtemp()) / "experiments.sqlite")
>>> d = RolloutDecision(decision_id="d1", experiment="e", rollout_id="r", seq=0, kind="pause",
...                     status="paused", step=0, challenger="B", champion="A",
...                     challenger_share=0.05, reason="", created_at=datetime.now(UTC))
>>> log.record(d), log.record(d), [x.decision_id for x in log.decisions("e", "r")]
(True, False, ['d1'])
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from driftline.ab import Experiment, RolloutSpec
from driftline.ab.rollout import FINISHED, weighted
from driftline.settings import Settings
from driftline.topics import RolloutDecision
from models.experiments import ExperimentStore, connect, prepare

log = logging.getLogger(__name__)

__all__ = ["RolloutLog", "RolloutRefused", "apply", "declared", "progress"]


class RolloutLog:
    """Rollout decisions by id, in the experiments' SQLite file (WAL, safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        prepare(
            path,
            "CREATE TABLE IF NOT EXISTS rollout_decisions ("
            " decision_id TEXT PRIMARY KEY, experiment TEXT NOT NULL,"
            " rollout_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL)",
        )

    @classmethod
    def of(cls, settings: Settings) -> RolloutLog:
        return cls(settings.experiments_db)

    def record(self, decision: RolloutDecision) -> bool:
        """Log a decision; False when its id is logged already."""
        with connect(self.path) as con:
            added = con.execute(
                "INSERT OR IGNORE INTO rollout_decisions VALUES (?, ?, ?, ?, ?)",
                [
                    decision.decision_id,
                    decision.experiment,
                    decision.rollout_id,
                    decision.seq,
                    decision.model_dump_json(),
                ],
            ).rowcount
        return bool(added)

    def decisions(self, experiment: str, rollout_id: str) -> list[RolloutDecision]:
        """The decisions of one rollout, oldest first."""
        with connect(self.path) as con:
            rows = con.execute(
                "SELECT body FROM rollout_decisions WHERE experiment = ? AND rollout_id = ?"
                " ORDER BY seq",
                [experiment, rollout_id],
            ).fetchall()
        return [RolloutDecision.model_validate_json(body) for (body,) in rows]


AliasMover = Callable[[Settings, str, str, str], None]


def move_alias(settings: Settings, name: str, version: str, alias: str) -> None:
    """Point `name@alias` at `version`, unless it already does."""
    from models import registry  # mlflow imports slowly: only when a rollout completes

    if registry.alias_version(settings, name, alias) != version:
        registry.set_alias(settings, name, version, alias)


def apply(
    settings: Settings,
    store: ExperimentStore,
    decisions: RolloutLog,
    decision: RolloutDecision,
    alias: AliasMover = move_alias,
) -> RolloutDecision:
    """Carry out `decision` (weights, alias at completion, log); idempotent. Returns it."""
    logged = decisions.decisions(decision.experiment, decision.rollout_id)
    newer = any(d.seq > decision.seq for d in logged)
    experiment = store.get(decision.experiment)
    if not newer and _same_rollout(experiment, decision):
        assert experiment is not None
        target = weighted(experiment, decision.challenger_share)
        if target != experiment:
            store.put(target)
    if decision.kind == "complete" and decision.model is not None:
        model = decision.model
        alias(settings, model.name, model.version, settings.models.default_alias)
    if decisions.record(decision):
        log.info(
            "rollout decision",
            extra={
                "experiment": decision.experiment,
                "kind": decision.kind,
                "share": decision.challenger_share,
                "reason": decision.reason,
            },
        )
    return decision


class Progress(NamedTuple):
    """Where a rollout stands: the fields of `GET /experiments/{name}/rollout` but the name."""

    rollout: RolloutSpec
    status: str
    step: int
    challenger_share: float
    decisions: list[RolloutDecision]


def progress(experiment: Experiment, decisions: RolloutLog) -> Progress:
    """The experiment's declared rollout as its last logged decision left it, or running at its
    first step before any."""
    spec = experiment.rollout
    assert spec is not None, "only an experiment with a rollout has progress"
    logged = decisions.decisions(experiment.name, spec.id)
    if not logged:
        return Progress(spec, "running", 0, spec.steps[0], [])
    last = logged[-1]
    return Progress(spec, last.status, last.step, last.challenger_share, logged)


class RolloutRefused(Exception):
    """Why a rollout cannot be shown or steered; `missing` when there is no such experiment."""

    def __init__(self, reason: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.missing = missing


def declared(
    store: ExperimentStore, decisions: RolloutLog, name: str, steering: bool = False
) -> Experiment:
    """The stored experiment `name` with a declared rollout (that has not finished, when
    `steering` it); otherwise `RolloutRefused` with the reason. What the API and CLI check."""
    experiment = store.get(name)
    if experiment is None:
        raise RolloutRefused(f"no stored experiment {name!r}", missing=True)
    if experiment.rollout is None:
        raise RolloutRefused(f"experiment {name!r} declares no rollout")
    if steering:
        status = progress(experiment, decisions).status
        if status in FINISHED:
            raise RolloutRefused(f"the rollout of {name!r} has finished ({status})")
    return experiment


def _same_rollout(experiment: Experiment | None, decision: RolloutDecision) -> bool:
    """The stored experiment still runs the rollout that took `decision`."""
    spec = experiment.rollout if experiment is not None else None
    return spec is not None and spec.id == decision.rollout_id
