"""A/B flow: `inference.results` + `inference.labeled` -> per-experiment reports -> `monitoring.ab`.

    python -m bytewax.run flows.ab:flow

Two keyed steps. `ledger`, keyed by experiment and shard of the answered inference id
(`driftline.ab.ledger`), remembers each id for the feedback time-to-live and turns each message
into the changes it makes (re-deliveries make none; shadows pair with what they shadow).
`report`, keyed by experiment, adds them up in `ExperimentStats` (traffic share, feedback,
realized accuracy, Brier score and an always-valid mSPRT between arms, shadow arms against the
arm that answered) and emits a report when something changed, at most every
`DRIFTLINE_AB_REPORT_SECONDS` of processing time per experiment; a timer emits the last change
of a quiet period. Bytewax recovery snapshots the shards that changed and the sums each epoch;
a report replayed after a crash carries the same `emitted_at` (the newest event time it
covers) and `updates` (how many changes it adds up), so the lake writer stores it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic

from driftline.ab.ledger import Change, IdLedger, answered_id, shard_of
from driftline.ab.report import ExperimentStats
from driftline.clock import Clock, as_utc, wall_clock
from driftline.settings import Settings
from driftline.topics import AB, LABELED, RESULTS, InferenceResult, Labeled
from flows.wiring import Outgoing, Parsed, configured, consume, publish_all, settled


class Changed(NamedTuple):
    experiment: str
    change: Change


class LedgerLogic(StatefulLogic[Parsed, Changed, dict[str, Any]]):
    """One shard of an experiment's inference ids. A shard without a message for the feedback
    time-to-live (processing time, as the feedback join counts it) is dropped: no labeled
    message can come for its ids any more, and an ended experiment leaves no keys behind."""

    def __init__(
        self, settings: Settings, resume: dict[str, Any] | None, clock: Clock = wall_clock
    ) -> None:
        self.ttl, self.clock = settings.feedback.ttl_seconds, clock
        if resume is None:
            self.ledger, self.idle_after = IdLedger(self.ttl), clock() + self.ttl
        else:
            self.ledger, self.idle_after = IdLedger.from_state(resume["ledger"]), resume["idle"]

    def on_item(self, value: Parsed) -> tuple[list[Changed], bool]:
        message, experiment = value.message, str(experiment_of(value))
        if isinstance(message, InferenceResult):
            changes = self.ledger.on_result(message)
        else:
            changes = self.ledger.on_labeled(message)
        self.idle_after = self.clock() + self.ttl
        return [Changed(experiment, change) for change in changes], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Changed], bool]:
        return [], StatefulLogic.DISCARD

    def notify_at(self) -> datetime:
        return as_utc(self.idle_after)

    def snapshot(self) -> dict[str, Any]:
        return {"ledger": self.ledger.to_state(), "idle": self.idle_after}


class ReportLogic(StatefulLogic[Changed, Outgoing, dict[str, Any]]):
    """One experiment's statistics, and when its next report may go out."""

    def __init__(
        self, settings: Settings, resume: dict[str, Any] | None, clock: Clock = wall_clock
    ) -> None:
        self.every, self.alpha = settings.ab.report_seconds, settings.ab.alpha
        self.clock = clock
        self.stats: ExperimentStats | None = None  # named after the first message's experiment
        self.last_emit = 0.0
        if resume is not None:
            self.stats = ExperimentStats.from_state(resume["stats"])
            self.last_emit = resume["last_emit"]

    def on_item(self, value: Changed) -> tuple[list[Outgoing], bool]:
        if self.stats is None:
            self.stats = ExperimentStats(value.experiment, self.alpha)
        self.stats.apply(value.change)
        return self._due(), StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Outgoing], bool]:
        return self._due(), StatefulLogic.RETAIN

    def _due(self) -> list[Outgoing]:
        now = self.clock()
        if self.stats is None or not self.stats.changed or now < self.last_emit + self.every:
            return []
        self.last_emit = now
        return [Outgoing(AB, self.stats.report())]

    def notify_at(self) -> datetime | None:
        if self.stats is None or not self.stats.changed:
            return None
        return as_utc(self.last_emit + self.every)

    def snapshot(self) -> dict[str, Any]:
        assert self.stats is not None  # Bytewax snapshots a key only after an item
        return {"stats": self.stats.to_state(), "last_emit": self.last_emit}


def experiment_of(parsed: Parsed) -> str | None:
    """Scored, routed, non-probe results and labeled messages of an experiment."""
    message = parsed.message
    if isinstance(message, Labeled):
        return message.experiment
    if message.probe or message.prediction is None:
        return None
    return message.experiment


def ledger_key(parsed: Parsed) -> str:
    """The experiment and the shard of the id the message is about (a shadow's: the answered)."""
    return f"{experiment_of(parsed)}/{shard_of(answered_id(parsed.message))}"


def build(settings: Settings) -> Dataflow:
    flow = Dataflow("ab")
    parsed, dead = consume(flow, settings, [RESULTS, LABELED])
    routed = op.filter("routed", parsed, lambda p: experiment_of(p) is not None)
    by_id = op.key_on("key", routed, ledger_key)
    ledgers = op.stateful("ledger", by_id, lambda resume: LedgerLogic(settings, resume))
    changes = op.map("unkey ledgers", ledgers, lambda kv: kv[1])
    by_experiment = op.key_on("by experiment", changes, lambda c: c.experiment)
    reports = op.stateful("report", by_experiment, lambda resume: ReportLogic(settings, resume))
    publish_all(op.map("unkey", reports, lambda kv: kv[1]), dead, settings)
    return flow


def flow() -> Dataflow:
    """The A/B dataflow with the configured settings (`python -m bytewax.run flows.ab:flow`)."""
    return settled(build(configured()))
