"""Monitor flow: results + labeled feedback -> per-model sliding-window statistics and alerts.

    python -m bytewax.run flows.monitor:flow     # or `driftline flow monitor` (recovery on)

`inference.results` and `inference.labeled` -> `monitoring.drift` (one `DriftReport` per model
version and window slide) and `monitoring.alerts`. Steps:

1. `parse`: invalid messages become dead letters; probes and results with an error are skipped.
2. `features`: per micro-batch, each model computes the feature rows of its results in one
   call and calibrates their probabilities, once per event: no window emission re-embeds.
3. `window`: keyed by `name/version`, a `ModelWindow` (`driftline.monitoring.window`) per model;
   its snapshots leave the events out: they go to a journal (`flows.journal`).
4. `share`: on one key, each report's share of all models' traffic (`driftline.monitoring.share`).

Why a custom `StatefulBatchLogic` and not Bytewax's `SlidingWindower`: the windower hands each
window its own list of events to fold, so every event would be folded into length/slide
windows and every statistic rebuilt per window. One `ModelWindow` instead keeps one open window
whose accumulators take an event in when it arrives and out when the window slides past it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeGuard, cast

import bytewax.operators as op
import numpy as np
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import StatefulBatchLogic

from driftline.clock import Clock, as_utc, wall_clock
from driftline.imports import keep_out
from driftline.monitoring.reference import Reference
from driftline.monitoring.retraining import RetrainPolicy
from driftline.monitoring.rows import encode_rows
from driftline.monitoring.share import Tick, TrafficShare
from driftline.monitoring.window import Event, ModelWindow, Output
from driftline.settings import Settings
from driftline.stats.domain_classifier import Features
from driftline.topics import (
    ALERTS,
    DRIFT,
    LABELED,
    RESULTS,
    RETRAIN_REQUESTS,
    DeadLetter,
    DriftReport,
    InferenceResult,
    Labeled,
    ModelRef,
)
from flows import metrics as flow_metrics
from flows.journal import Journal
from flows.metrics import EMISSION
from flows.wiring import Outgoing, Parsed, configured, consume, publish_all, settled, to_deadletter

log = logging.getLogger(__name__)
FLOW = "monitor"

ReferenceProvider = Callable[[str, str], Reference]
"""(model name, version) -> the model's reference."""
Featurizer = Callable[[str, str, list[str]], Features]
"""(model name, version, texts) -> one feature row per text."""


def monitored(parsed: Parsed) -> bool:
    """Labeled feedback, and results that carry a score (no probes, no errors)."""
    m = parsed.message
    if isinstance(m, Labeled):
        return True
    return bool(m.model is not None and m.prediction is not None and not m.probe and not m.error)


def _letter(parsed: Parsed, reason: str) -> DeadLetter:
    return DeadLetter.of(
        FLOW,
        reason,
        parsed.message.to_json(),
        source_topic=parsed.topic,
        partition=parsed.partition,
        offset=parsed.offset,
    )


class Enricher:
    """Per micro-batch: feature rows and calibrated probabilities, one call per model."""

    def __init__(self, references: ReferenceProvider, featurize: Featurizer) -> None:
        self._references = references
        self._featurize = featurize

    def __call__(self, batch: Sequence[Parsed]) -> list[Parsed | Event | DeadLetter]:
        out: list[Parsed | Event | DeadLetter] = []
        by_model: dict[ModelRef, list[Parsed[InferenceResult]]] = {}
        for parsed in batch:
            if isinstance(parsed.message, Labeled):
                out.append(parsed)
            else:
                by_model.setdefault(parsed.message.model, []).append(parsed)
        for model, group in by_model.items():
            try:
                calibrator = self._references(model.name, model.version).calibrator
                texts = [p.message.data for p in group]
                rows = encode_rows(self._featurize(model.name, model.version, texts))
                p = np.array([g.message.prediction for g in group], dtype=np.float64)
                calibrated = np.clip(calibrator.predict(p), 0.0, 1.0)
            except Exception as exc:  # no reference for this version, say: keep going
                log.exception("features failed", extra={"model": model.key})
                out += [_letter(g, f"monitor: {type(exc).__name__}: {exc}") for g in group]
                continue
            for i, g in enumerate(group):
                r = g.message
                out.append(
                    Event(
                        str(r.inference_id),
                        r.created_at.timestamp(),
                        float(p[i]),
                        float(calibrated[i]),
                        int(r.label if r.label is not None else p[i] >= r.threshold),
                        rows[i],
                        origin=g,
                    )
                )
        return out


class WindowLogic(StatefulBatchLogic):
    """Bytewax state of one model key: a `ModelWindow`, built on the first result or resumed.

    Each micro-batch is applied feedback first, then results in event-time order: a batch
    mixing partitions (a backlog after a restart, say) is in order before the watermark moves,
    so only disorder across batches counts against the allowed lateness. Bytewax calls
    `on_notify` at `notify_at`, when idleness would close the open window (`ModelWindow.idle`).
    """

    def __init__(
        self,
        references: ReferenceProvider,
        settings: Settings,
        resume: dict[str, Any] | None,
        clock: Clock = wall_clock,
        journals: Path | None = None,
    ) -> None:
        """`journals`: the folder of the windows' event journals (`flows.journal`), the flow's
        recovery directory; None: the events go into each snapshot."""
        self._references = references
        self._config = (settings.monitor, settings.alerts, settings.models.threshold)
        self._clock = clock
        self._journals = journals
        self._journal: Journal | None = None
        self.window: ModelWindow | None = None
        self.retrain = RetrainPolicy(settings.retrain, clock, resume and resume.get("retrain"))
        if resume is not None:
            model = ModelRef(name=resume["model"][0], version=resume["model"][1])
            events = []
            if "journal" in resume:  # else a snapshot with its events, or without journals
                events = self._journal_of(model).resume(resume["journal"])
            reference = references(model.name, model.version)
            self.window = ModelWindow.from_state(resume, reference, *self._config, clock, events)

    def _journal_of(self, model: ModelRef) -> Journal:
        if self._journal is None:
            if self._journals is None:
                raise RuntimeError("a snapshot names a journal, and there is no recovery directory")
            self._journal = Journal(self._journals, model.key)
        return self._journal

    def _window(self, model: ModelRef) -> ModelWindow:
        if self.window is None:
            reference = self._references(model.name, model.version)
            self.window = ModelWindow(model, reference, *self._config, self._clock)
        return self.window

    def on_batch(
        self, values: list[Parsed | Event]
    ) -> tuple[Iterable[Outgoing | Tick | DriftReport], bool]:
        results = sorted((v for v in values if isinstance(v, Event)), key=lambda e: e.time)
        out: list[Outgoing | Tick | DriftReport] = []
        for value in [v for v in values if not isinstance(v, Event)] + results:
            out += self._apply(value)
        return out, StatefulBatchLogic.DISCARD if self.window is None else StatefulBatchLogic.RETAIN

    def _apply(self, value: Parsed | Event) -> list[Outgoing | Tick | DriftReport]:
        if isinstance(value, Event):
            model = value.origin.message.model
            window = self._window(model)
            started = time.perf_counter()
            out = _timed(window.add_result(value), started)
            if out.rejected is not None:
                return [to_deadletter(_letter(value.origin, out.rejected))]
            if not out.duplicate:
                return [Tick(model.key, value.time), *self._outgoing(out)]
        elif self.window is None:
            # Feedback before this model's first result: no window is open that it could
            # update (and no reference needs loading for it).
            return []
        else:
            started = time.perf_counter()
            out = _timed(self.window.add_labeled(value.message), started)
        return self._outgoing(out)

    def notify_at(self) -> datetime | None:
        wake_at = None if self.window is None else self.window.wake_at()
        return None if wake_at is None else as_utc(wake_at)

    def on_notify(self) -> tuple[Iterable[Outgoing | Tick | DriftReport], bool]:
        assert self.window is not None  # notify_at is None without a window
        started = time.perf_counter()
        return self._outgoing(_timed(self.window.idle(), started)), StatefulBatchLogic.RETAIN

    def _outgoing(self, out: Output) -> list[Outgoing | Tick | DriftReport]:
        """Alerts, and the retraining requests they make, to publish; reports go on to the
        share step first."""
        requests = [r for a in out.alerts if (r := self.retrain.on_alert(a)) is not None]
        return [*_outgoing(out), *(Outgoing(RETRAIN_REQUESTS, r) for r in requests)]

    def snapshot(self) -> dict[str, Any] | None:
        if self.window is None:
            return None
        w = self.window
        state = w.to_state(events=self._journals is None) | {"retrain": self.retrain.to_state()}
        if self._journals is not None:
            live = len(w.window) + len(w.pending)
            journal = self._journal_of(w.model)
            state["journal"] = journal.save(w.changed_events(), live, w.live_events)
        return state


def _timed(out: Output, started: float) -> Output:
    """`out`, with the time since `started` observed when it holds reports: an emission."""
    if out.reports:
        EMISSION.labels(FLOW).observe(time.perf_counter() - started)
    return out


def _outgoing(out: Output) -> list[Outgoing | Tick | DriftReport]:
    """Alerts to publish; reports go on to the share step first."""
    for alert in out.alerts:
        flow_metrics.alert(alert)
    return [*out.reports, *(Outgoing(ALERTS, a) for a in out.alerts)]


class ShareLogic(StatefulBatchLogic):
    """Bytewax state of the single share key: a `TrafficShare`."""

    def __init__(
        self, settings: Settings, resume: dict[str, Any] | None, clock: Clock = wall_clock
    ) -> None:
        self.share = TrafficShare(settings.monitor, clock, resume)

    def on_batch(self, values: list[Tick | DriftReport]) -> tuple[Iterable[Outgoing], bool]:
        for value in values:
            if isinstance(value, Tick):
                self.share.add_tick(value)
            else:
                self.share.add_report(value)
        return self._publish()

    def notify_at(self) -> datetime | None:
        wake_at = self.share.wake_at()
        return None if wake_at is None else as_utc(wake_at)

    def on_notify(self) -> tuple[Iterable[Outgoing], bool]:
        return self._publish()

    def _publish(self) -> tuple[Iterable[Outgoing], bool]:
        reports = self.share.ready()
        for report in reports:
            flow_metrics.report(report)
            log.info(
                "drift report",
                extra={
                    "model": report.model.key,
                    "window_end": report.window_end.isoformat(),
                    "n": report.n,
                    "share": report.share,
                    "ks_d": report.ks_d,
                    "domain_auc": report.domain_auc,
                },
            )
        return [Outgoing(DRIFT, r) for r in reports], StatefulBatchLogic.RETAIN

    def snapshot(self) -> dict[str, Any]:
        return self.share.to_state()


def _is_dead_letter(item: Parsed | Event | DeadLetter) -> TypeGuard[DeadLetter]:
    return isinstance(item, DeadLetter)


def _for_share(item: Outgoing | Tick | DriftReport) -> bool:
    return not isinstance(item, Outgoing)


def _key(item: Parsed | Event) -> str:
    message = item.origin.message if isinstance(item, Event) else item.message
    return message.model.key


def build(
    s: Settings,
    references: ReferenceProvider | None = None,
    featurize: Featurizer | None = None,
    journals: Path | None = None,
) -> Dataflow:
    """The monitor dataflow; `references` and `featurize` default to the registered models',
    fetched by a child process so that the monitor never imports MLflow (`models.fetch`).
    `journals`: where the windows keep their events (the recovery directory), else in each
    snapshot."""
    if references is None or featurize is None:
        from models.fetch import FetchedVersions

        versions = FetchedVersions(s)
        references = references or versions.reference
        featurize = featurize or versions.features
    provide: ReferenceProvider = references

    flow = Dataflow(FLOW)
    parsed, dead = consume(flow, s, [RESULTS, LABELED])
    wanted = op.filter("monitored", parsed, monitored)
    enriched = op.flat_map_batch("features", wanted, Enricher(provide, featurize))
    split = op.branch("enriched", enriched, _is_dead_letter)
    keyed = op.key_on("by_model", cast(Stream[Parsed | Event], split.falses), _key)
    windows = op.stateful_batch(
        "window", keyed, lambda resume: WindowLogic(provide, s, resume, journals=journals)
    )
    outputs = op.branch("for_share", op.map("unkey", windows, lambda kv: kv[1]), _for_share)
    shares = op.stateful_batch(
        "share",
        op.key_on("one_key", outputs.trues, lambda _: "all"),
        lambda resume: ShareLogic(s, resume),
    )
    reports = op.map("unkey_share", shares, lambda kv: kv[1])
    letters = cast(Stream[DeadLetter], split.trues)
    publish_all(op.merge("outputs", reports, outputs.falses), op.merge("letters", dead, letters), s)
    return flow


def flow() -> Dataflow:
    """The monitor with the configured settings (`python -m bytewax.run flows.monitor:flow`).

    scikit-learn and MLflow import pandas and pyarrow only to look for them: kept out before
    either is imported, 60 MB less (`driftline.imports`).
    """
    keep_out("pandas", "pyarrow")
    recovery = os.environ.get("BYTEWAX_RECOVERY_DIRECTORY")
    return settled(build(configured(), journals=Path(recovery) if recovery else None))
