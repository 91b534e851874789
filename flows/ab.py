"""A/B flow: `inference.results` + `inference.labeled` -> per-experiment reports -> `monitoring.ab`.

    python -m bytewax.run flows.ab:flow

Keyed by experiment. Each experiment's `ExperimentStats` (traffic share, feedback, realized
accuracy, Brier score and an always-valid mSPRT between arms; shadow arms paired with the
answered inferences they shadow, `driftline.ab.shadow`) is updated per message, and a
report is emitted when something changed, at most every `DRIFTLINE_AB_REPORT_SECONDS` of
processing time per experiment; a timer emits the last change of a quiet period. The state is
snapshotted by Bytewax recovery; a report replayed after a crash carries the same `emitted_at`
(the newest event time it covers), so the lake writer stores it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic

from driftline.ab.report import ExperimentStats
from driftline.clock import Clock, as_utc, wall_clock
from driftline.settings import Settings
from driftline.topics import AB, LABELED, RESULTS, InferenceResult, Labeled
from flows.wiring import Outgoing, Parsed, configured, consume, publish_all, settled


class ReportLogic(StatefulLogic[Parsed, Outgoing, dict[str, Any]]):
    """One experiment's statistics, and when its next report may go out."""

    def __init__(
        self, settings: Settings, resume: dict[str, Any] | None, clock: Clock = wall_clock
    ) -> None:
        self.every = settings.ab.report_seconds
        self.horizon, self.alpha = settings.feedback.ttl_seconds, settings.ab.alpha
        self.clock = clock
        self.stats: ExperimentStats | None = None  # named after the first message's experiment
        self.last_emit = 0.0
        if resume is not None:
            self.stats = ExperimentStats.from_state(resume["stats"])
            self.last_emit = resume["last_emit"]

    def on_item(self, value: Parsed) -> tuple[list[Outgoing], bool]:
        message = value.message
        if self.stats is None:
            self.stats = ExperimentStats(str(experiment_of(value)), self.horizon, self.alpha)
        if isinstance(message, InferenceResult):
            self.stats.on_result(message)
        else:
            self.stats.on_labeled(message)
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


def build(settings: Settings) -> Dataflow:
    flow = Dataflow("ab")
    parsed, dead = consume(flow, settings, [RESULTS, LABELED])
    routed = op.filter("routed", parsed, lambda p: experiment_of(p) is not None)
    keyed = op.key_on("key", routed, lambda p: str(experiment_of(p)))
    reports = op.stateful("report", keyed, lambda resume: ReportLogic(settings, resume))
    publish_all(op.map("unkey", reports, lambda kv: kv[1]), dead, settings)
    return flow


def flow() -> Dataflow:
    """The A/B dataflow with the configured settings (`python -m bytewax.run flows.ab:flow`)."""
    return settled(build(configured()))
