"""One model version's event-time sliding window, maintained incrementally: pure code, no I/O.

`ModelWindow` is the state behind `flows.monitor`, one per model version. Results enter the
window as they arrive and leave it when it slides past them; every statistic is an accumulator
with `update`/`remove` (`driftline.stats`), so one slide costs the events that enter and leave
it, not the window's size. Only the domain classifier is recomputed per emission, on at most
`domain_rows` rows per side from features computed once per event upstream.

Windows are aligned to multiples of `slide` since the Unix epoch and are half-open,
`[end - length, end)`. The watermark is the newest result time seen minus the allowed lateness;
the window ending at `end` is emitted once the watermark reaches `end`, so results up to the
allowed lateness behind the newest one still count in their window. A result older than the
watermark (or than the open window) is rejected and becomes a dead letter. When a model gets no
results for `monitor_idle_seconds` of wall time, its watermark moves on with the wall clock
(`idle`), so its last windows are emitted even if its traffic stops.

Example: two results in the window ending at 60 s, then one at 75 s moves the watermark
(lateness 5 s) past 60 s and the window is emitted:

>>> import numpy as np
>>> from pathlib import Path
>>> from driftline.settings import Settings
>>> from flows.monitor_window import Event, Identity, ModelWindow, Reference
>>> ref = Reference(np.array([0.2, 0.4, 0.6, 0.8]), np.array([0, 0, 1, 1]),
...                 np.eye(4), Identity())
>>> s = Settings(Path("."), monitor_window_seconds=60, monitor_slide_seconds=30,
...              monitor_lateness_seconds=5, monitor_ks_bins=10)
>>> w = ModelWindow("m", "1", ref, s)
>>> out = [w.add_result(Event(f"id{i}", t, p, p, int(p >= 0.5), np.ones(4).tobytes()))
...        for i, (t, p) in enumerate([(31.0, 0.9), (50.0, 0.1), (75.0, 0.7)])]
>>> [(r.window_end.timestamp(), r.n, r.ks_d) for r in out[2].reports]
[(60.0, 2, 0.5)]
>>> w.add_result(Event("late", 40.0, 0.5, 0.5, 1, np.ones(4).tobytes())).rejected
'late: event time 40.000s is before the watermark 70.000s (allowed lateness 5s)'
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from scipy import sparse

from driftline.settings import Settings
from driftline.stats import CBPE, Confusion, ErrorStreamDetector, FeedbackMetrics, SlidingKS
from driftline.stats.domain_classifier import Features, domain_auc
from driftline.topics import (
    Alert,
    DriftReport,
    EstimatedPerformance,
    FeedbackStats,
    Labeled,
    ModelRef,
    utc_now,
)
from flows.watermark import Watermark

DOMAIN_FOLDS = 5
"""Folds of the domain classifier's out-of-fold AUC."""


class Calibrator(Protocol):
    def predict(self, p: Any) -> Any: ...


class Identity:
    """A calibrator that leaves probabilities as they are (tests, uncalibrated references)."""

    def predict(self, p: Any) -> np.ndarray:
        return np.asarray(p, dtype=np.float64)


@dataclass(frozen=True)
class Reference:
    """What monitoring compares a window with: held-out probabilities, labels, a feature
    sample, and the probability calibrator (`models.reference.Reference` has this shape)."""

    probabilities: np.ndarray
    labels: np.ndarray
    features: Features
    calibrator: Calibrator


@dataclass
class Event:
    """One scored inference as the window keeps it (plain data, so it snapshots as is).

    `features` is the model's feature row, encoded once by `encode_row`; `origin` is whatever
    the caller needs to dead-letter a rejected event and is never snapshotted.
    """

    inference_id: str
    time: float
    """Event time, seconds since the epoch."""
    p: float
    calibrated: float
    label: int
    features: bytes
    feedback_count: int = 0
    feedback_mean: float | None = None
    origin: Any = field(default=None, compare=False)

    def state(self) -> tuple:
        return (
            self.inference_id,
            self.time,
            self.p,
            self.calibrated,
            self.label,
            self.features,
            self.feedback_count,
            self.feedback_mean,
        )


def encode_row(row: Features) -> bytes:
    """One feature row as bytes: dense float32 values, or sparse (int32 indices, float32 data)."""
    if sparse.issparse(row):
        csr = sparse.csr_array(row)
        idx = csr.indices.astype(np.int32)
        return (
            b"S" + len(idx).to_bytes(4, "little") + idx.tobytes() + csr.data.astype("<f4").tobytes()
        )
    return b"D" + np.asarray(row, dtype="<f4").ravel().tobytes()


def decode_rows(rows: list[bytes], n_columns: int) -> Features:
    """The matrix of rows encoded by `encode_row` (sparse if they were sparse)."""
    if not rows or rows[0][:1] == b"D":
        return np.vstack([np.frombuffer(r, dtype="<f4", offset=1) for r in rows]).astype(np.float64)
    indptr, indices, data = [0], [], []
    for r in rows:
        k = int.from_bytes(r[1:5], "little")
        indices.append(np.frombuffer(r, dtype="<i4", count=k, offset=5))
        data.append(np.frombuffer(r, dtype="<f4", count=k, offset=5 + 4 * k))
        indptr.append(indptr[-1] + k)
    return sparse.csr_array(
        (np.concatenate(data).astype(np.float64), np.concatenate(indices), indptr),
        shape=(len(rows), n_columns),
    )


@dataclass
class Output:
    """What one input produced: reports and alerts to publish, or why the input was rejected."""

    reports: list[DriftReport] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    rejected: str | None = None
    duplicate: bool = False
    """The input was a re-delivery of one already counted."""

    def extend(self, other: Output) -> None:
        self.reports += other.reports
        self.alerts += other.alerts


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


class ModelWindow:
    """The sliding window of one model version and its incremental statistics."""

    def __init__(self, name: str, version: str, reference: Reference, config: Settings) -> None:
        self.model = ModelRef(name=name, version=version)
        self.reference = reference
        if not 0 < config.monitor_slide_seconds <= config.monitor_window_seconds:
            raise ValueError("need 0 < monitor_slide_seconds <= monitor_window_seconds")
        self.config = config
        self._n_columns = reference.features.shape[1]
        ref_p = np.asarray(reference.probabilities, dtype=np.float64)
        ref_labels = (ref_p >= config.threshold).astype(int)
        self.reference_f1 = Confusion.from_cells(
            n=len(ref_p),
            tp=float(np.sum((ref_labels == 1) & (reference.labels == 1))),
            fp=float(np.sum((ref_labels == 1) & (reference.labels == 0))),
            fn=float(np.sum((ref_labels == 0) & (reference.labels == 1))),
            tn=float(np.sum((ref_labels == 0) & (reference.labels == 0))),
        ).f1
        self.ks = SlidingKS(ref_p, bins=config.monitor_ks_bins)
        self.cbpe = CBPE()
        self.feedback = FeedbackMetrics()
        self.detector = ErrorStreamDetector(config.monitor_change_detector)  # type: ignore[arg-type]
        self.window: dict[str, Event] = {}
        """Events inside the open window `[end - length, end)`, by inference id."""
        self.pending: dict[str, Event] = {}
        """Accepted events at or after `end`: they enter the window when it slides."""
        self._queue: list[tuple[float, str]] = []
        """Heap of (time, id) over window and pending events, oldest first, for eviction."""
        self.early_feedback: dict[str, tuple[float, int, float]] = {}
        """Feedback whose result has not arrived yet: id -> (time, count, mean)."""
        self.end: float | None = None
        """End of the open window; None before the first result."""
        self.event_clock = Watermark(config.monitor_lateness_seconds, config.monitor_idle_seconds)
        self.emissions = 0
        self.firing: set[str] = set()

    # ---- input ---------------------------------------------------------------------------

    @property
    def watermark(self) -> float:
        return self.event_clock.value

    def idle(self, now: float) -> Output:
        """Emit the windows the wall clock closes once results stopped (`flows.watermark`)."""
        if self.event_clock.idle(now) and self.end is not None:
            return self._advance()
        return Output()

    def wake_at(self) -> float | None:
        """Wall time at which `idle` would close the open window; None if nothing would."""
        if self.end is None or not (self.window or self.pending):
            return None
        return self.event_clock.wake_at(self.end)

    def _next_boundary(self, time: float) -> float:
        """The first slide boundary after `time`: the end of the first window holding it."""
        slide = self.config.monitor_slide_seconds
        return (math.floor(time / slide) + 1) * slide

    def _start(self) -> float:
        assert self.end is not None
        return self.end - self.config.monitor_window_seconds

    def add_result(self, event: Event, now: float | None = None) -> Output:
        """Add one scored result; emits every window the advancing watermark closes.

        `now` is the wall time (for `idle`); without it idleness is not tracked.
        """
        if event.inference_id in self.window or event.inference_id in self.pending:
            return Output(duplicate=True)  # re-delivered: counted once
        if self.end is None:
            self.end = self._next_boundary(event.time)
        floor = max(self.watermark, self._start())
        if event.time < floor:
            return Output(
                rejected=f"late: event time {event.time:.3f}s is before the "
                f"{'watermark' if floor == self.watermark else 'open window start'} "
                f"{floor:.3f}s (allowed lateness {self.config.monitor_lateness_seconds:g}s)"
            )
        early = self.early_feedback.pop(event.inference_id, None)
        if early is not None:
            _, event.feedback_count, event.feedback_mean = early
        heapq.heappush(self._queue, (event.time, event.inference_id))
        if event.time < self.end:
            self._enter(event)
        else:
            self.pending[event.inference_id] = event
        self.event_clock.observe(event.time, now)
        return self._advance()

    def add_labeled(self, labeled: Labeled) -> Output:
        """Replace an inference's feedback contribution with the latest (mean of all so far).

        Feedback is at-least-once and cumulative, so a message with no more scores than the
        one already applied is a duplicate or stale and changes nothing.
        """
        key, count, mean = str(labeled.inference_id), len(labeled.feedback), labeled.feedback_mean
        event = self.window.get(key) or self.pending.get(key)
        if event is None:
            time = labeled.created_at.timestamp()
            old = self.early_feedback.get(key)
            if self.end is not None and time >= self._start() and (old is None or count > old[1]):
                self.early_feedback[key] = (time, count, mean)
            return Output()
        if count <= event.feedback_count:
            return Output()
        in_window = key in self.window
        if in_window and event.feedback_mean is not None:
            self.feedback.remove(event.p, event.label, event.feedback_mean)
        event.feedback_count, event.feedback_mean = count, mean
        if in_window:
            self.feedback.update(event.p, event.label, mean)
        return self._error(event, abs(event.label - mean))

    # ---- window --------------------------------------------------------------------------

    def _enter(self, event: Event) -> None:
        self.window[event.inference_id] = event
        self.ks.update(event.p)
        self.cbpe.update(event.calibrated, event.label)
        if event.feedback_mean is not None:
            self.feedback.update(event.p, event.label, event.feedback_mean)

    def _leave(self, event: Event) -> None:
        self.ks.remove(event.p)
        self.cbpe.remove(event.calibrated, event.label)
        if event.feedback_mean is not None:
            self.feedback.remove(event.p, event.label, event.feedback_mean)

    def _advance(self) -> Output:
        out = Output()
        assert self.end is not None
        while self.watermark >= self.end:
            if self.window:
                out.extend(self.emit())
            self.end += self.config.monitor_slide_seconds
            start = self._start()
            while self._queue and self._queue[0][0] < start:
                _, key = heapq.heappop(self._queue)
                self._leave(self.window.pop(key))
            for key in [k for k, e in self.pending.items() if e.time < self.end]:
                self._enter(self.pending.pop(key))
            self.early_feedback = {k: v for k, v in self.early_feedback.items() if v[0] >= start}
        return out

    def events(self) -> list[Event]:
        """The events of the open window (for tests and the benchmark)."""
        return list(self.window.values())

    # ---- emission ------------------------------------------------------------------------

    def _domain(self, end: float) -> tuple[float | None, float | None, bool | None]:
        cfg = self.config
        self.emissions += 1
        if (self.emissions - 1) % cfg.monitor_domain_every:
            return None, None, None
        rng = np.random.default_rng(_seed(self.model.name, self.model.version, end))
        # In event-time order, so a window re-emitted after a replay gets the same sample.
        events = sorted(self.window.values(), key=lambda e: (e.time, e.inference_id))
        cap = cfg.monitor_domain_rows
        if len(events) > cap:
            events = [events[i] for i in np.sort(rng.choice(len(events), cap, replace=False))]
        ref = self.reference.features
        if ref.shape[0] > cap:
            ref = ref[np.sort(rng.choice(ref.shape[0], cap, replace=False))]
        current = decode_rows([e.features for e in events], self._n_columns)
        try:
            result = domain_auc(ref, current, folds=DOMAIN_FOLDS, seed=0)
        except ValueError:  # too few distinct rows in the window for the folds
            return None, None, None
        return result.auc, result.threshold, result.drifted

    def emit(self) -> Output:
        """The report of the open window as it is now, and the alerts it raises."""
        cfg = self.config
        assert self.end is not None
        start, end = self._start(), self.end
        auc, auc_threshold, drifted = self._domain(end)
        estimated = self.cbpe.estimate()
        fb = self.feedback.value()
        contradiction = bool(
            fb.realized.n >= cfg.monitor_min_feedback
            and fb.realized.f1 is not None
            and estimated.f1 is not None
            and abs(fb.realized.f1 - estimated.f1) > cfg.monitor_contradiction_tolerance
        )
        report = DriftReport(
            model=self.model,
            window_start=_utc(start),
            window_end=_utc(end),
            emitted_at=utc_now(),
            n=self.ks.n,
            ks_d=self.ks.d(),
            ks_p_value=self.ks.p_value(),
            domain_auc=auc,
            domain_auc_threshold=auc_threshold,
            feature_drift=drifted,
            estimated=EstimatedPerformance(
                accuracy=estimated.accuracy,
                precision=estimated.precision,
                recall=estimated.recall,
                f1=estimated.f1,
            ),
            feedback=FeedbackStats(
                n=fb.realized.n, brier=fb.brier, accuracy=fb.realized.accuracy, f1=fb.realized.f1
            ),
            contradiction=contradiction,
        )
        return Output(reports=[report], alerts=list(self._alerts(report)))

    def _checks(self, r: DriftReport) -> Iterable[tuple[str, float | None, float | None, bool]]:
        """(metric, value, threshold, crossed) for every alerting statistic."""
        cfg = self.config
        yield "ks_d", r.ks_d, cfg.alert_ks_d, r.ks_d is not None and r.ks_d > cfg.alert_ks_d
        if r.domain_auc is not None:  # a skipped classifier leaves the alert as it was
            crossed = bool(r.feature_drift) and r.domain_auc > cfg.alert_domain_auc
            yield "domain_auc", r.domain_auc, cfg.alert_domain_auc, crossed
        f1, ref_f1 = r.estimated.f1, self.reference_f1
        drop = None if f1 is None or ref_f1 is None else ref_f1 - f1
        yield "cbpe_f1_drop", drop, cfg.alert_f1_drop, drop is not None and drop > cfg.alert_f1_drop
        brier = r.feedback.brier
        yield "brier", brier, cfg.alert_brier, brier is not None and brier > cfg.alert_brier
        yield "contradiction", float(r.contradiction), None, r.contradiction

    def _alerts(self, r: DriftReport) -> Iterable[Alert]:
        """An alert when a statistic goes from below to above its threshold (not every slide)."""
        for metric, value, threshold, crossed in self._checks(r):
            if not crossed:
                self.firing.discard(metric)
                continue
            if metric in self.firing:
                continue
            self.firing.add(metric)
            assert value is not None
            yield self._alert(metric, value, threshold, r.window_end, f"{metric} {value:.4g}")

    def _alert(
        self,
        metric: str,
        value: float,
        threshold: float | None,
        end: datetime,
        text: str,
        identity: str = "",
    ) -> Alert:
        """An alert whose id is a digest of (model, metric, window end, identity): a window
        re-emitted after a crash yields the same id, which the lake stores once."""
        m = self.model
        key = f"{m.name}/{m.version}/{metric}/{end.isoformat()}/{identity}"
        return Alert(
            alert_id=hashlib.sha256(key.encode()).hexdigest()[:32],
            model=m,
            metric=metric,
            value=value,
            threshold=threshold,
            window_end=end,
            message=f"{m.name}/{m.version}: {text}"
            + (f" crossed {threshold:g}" if threshold is not None else ""),
            created_at=utc_now(),
        )

    def _error(self, event: Event, error: float) -> Output:
        """Feed the change detector; an alert on the window the changing event belongs to."""
        if not self.detector.update(error):
            return Output()
        end = _utc(self._next_boundary(event.time))
        text = f"{self.config.monitor_change_detector} detected a change in the error stream"
        identity = f"{event.inference_id}/{event.feedback_count}"
        return Output(alerts=[self._alert("error_change", error, None, end, text, identity)])

    # ---- recovery ------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain data for a Bytewax snapshot (the reference is reloaded, not snapshotted)."""
        return {
            "model": (self.model.name, self.model.version),
            "window": [e.state() for e in self.window.values()],
            "pending": [e.state() for e in self.pending.values()],
            "early_feedback": dict(self.early_feedback),
            "end": self.end,
            **self.event_clock.to_state(),
            "emissions": self.emissions,
            "firing": sorted(self.firing),
            "ks": self.ks.to_state(),
            "cbpe": self.cbpe.to_state(),
            "feedback": self.feedback.to_state(),
            "detector": self.detector.to_state(),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], reference: Reference, config: Settings
    ) -> ModelWindow:
        """Rebuild from `to_state()` with the model's reference."""
        name, version = state["model"]
        w = cls(name, version, reference, config)
        w.window = {s[0]: Event(*s) for s in state["window"]}
        w.pending = {s[0]: Event(*s) for s in state["pending"]}
        w._queue = sorted(
            (e.time, e.inference_id) for e in (*w.window.values(), *w.pending.values())
        )
        w.early_feedback = dict(state["early_feedback"])
        w.end, w.emissions = state["end"], state["emissions"]
        w.event_clock = Watermark(
            config.monitor_lateness_seconds, config.monitor_idle_seconds, state
        )
        w.firing = set(state["firing"])
        w.ks = SlidingKS.from_state(state["ks"])
        w.cbpe = CBPE.from_state(state["cbpe"])
        w.feedback = FeedbackMetrics.from_state(state["feedback"])
        w.detector = ErrorStreamDetector.from_state(state["detector"])
        return w
