"""One model version's event-time sliding window, maintained incrementally: pure code, no I/O.

`ModelWindow` is the state behind `flows.monitor`, one per model version. Results enter the
window as they arrive and leave it when it slides past them; every statistic is an accumulator
with `update`/`remove` (`driftline.stats`), so one slide costs the events that enter and leave
it, not the window's size. Feature drift is measured twice, on feature rows computed once per
event upstream: by the MMD (`driftline.stats.mmd`), an accumulator of each event's random
Fourier features, mapped once per event, in one batch per emission; and by the domain
classifier (`driftline.monitoring.domain`), the one statistic recomputed per emission, on a
sample the window keeps per slide (the events with the smallest `sample_key`), so that an
emission costs the sample, not the window.

Windows are aligned to multiples of `slide` since the Unix epoch and are half-open,
`[end - length, end)`. The watermark (`driftline.monitoring.watermark`) is the newest result
time seen minus the allowed lateness; the window ending at `end` is emitted once the watermark
reaches `end`, so results up to the allowed lateness behind the newest one still count in their
window. A result older than the watermark (or than the open window) is rejected and becomes a
dead letter. When a model gets no results for `idle_seconds` of wall time, its watermark moves
on with the wall clock (`idle`), so its last windows are emitted even if its traffic stops.

Example: two results in the window ending at 60 s, then one at 75 s moves the watermark
(lateness 5 s) past 60 s and the window is emitted:

>>> import numpy as np
>>> from driftline.monitoring.reference import Reference
>>> from driftline.settings import AlertSettings, MonitorSettings
>>> from driftline.topics import ModelRef
>>> ref = Reference(np.array([0.2, 0.4, 0.6, 0.8]), np.array([0, 0, 1, 1]), np.eye(4))
>>> config = MonitorSettings(window_seconds=60, slide_seconds=30, lateness_seconds=5, ks_bins=10)
>>> w = ModelWindow(ModelRef(name="m", version="1"), ref, config, AlertSettings(), 0.5,
...                 clock=lambda: 0.0)
>>> out = [w.add_result(Event(f"id{i}", t, p, p, int(p >= 0.5), np.ones(4).tobytes()))
...        for i, (t, p) in enumerate([(31.0, 0.9), (50.0, 0.1), (75.0, 0.7)])]
>>> [(r.window_end.timestamp(), r.n, r.ks_d) for r in out[2].reports]
[(60.0, 2, 0.5)]
>>> w.add_result(Event("late", 40.0, 0.5, 0.5, 1, np.ones(4).tobytes())).rejected
'late: event time 40.000s is before the watermark 70.000s (allowed lateness 5s)'
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.clock import Clock, as_utc, wall_clock
from driftline.monitoring.alerts import AlertPolicy, contradicts
from driftline.monitoring.domain import DomainCheck, sample_key, window_seed
from driftline.monitoring.reference import Reference
from driftline.monitoring.rows import decode_rows
from driftline.monitoring.watermark import Watermark
from driftline.settings import AlertSettings, MonitorSettings
from driftline.stats import CBPE, FeedbackMetrics, SlidingKS
from driftline.stats.feedback import reward
from driftline.topics import (
    Alert,
    DriftReport,
    EstimatedPerformance,
    FeedbackStats,
    Labeled,
    ModelRef,
)


@dataclass(slots=True)  # no per-event __dict__: a window holds up to millions of these
class Event:
    """One scored inference as the window keeps it (plain data, so it snapshots as is).

    `features` is the model's feature row, encoded once by `rows.encode_row`; `origin` is
    whatever the caller needs to dead-letter a rejected event: never snapshotted, and dropped
    when the window accepts the event (kept, it would stay for the window's length).
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


class ModelWindow:
    """The sliding window of one model version and its incremental statistics."""

    def __init__(
        self,
        model: ModelRef,
        reference: Reference,
        config: MonitorSettings,
        alerts: AlertSettings,
        threshold: float,
        clock: Clock = wall_clock,
    ) -> None:
        self.model = model
        self.reference = reference
        self.config = config
        self.clock = clock
        self.ks = SlidingKS(reference.probabilities, bins=config.ks_bins)
        self.cbpe = CBPE()
        self.feedback = FeedbackMetrics()
        self.domain = DomainCheck(reference.features, config.domain_rows, config.domain_every)
        self.mmd = reference.feature_mmd.empty()
        self._leaving: dict[float, tuple[np.ndarray, int]] = {}
        """The MMD sums of the mapped window events by the window end at which they leave:
        events leave by whole slides, so each slide's go out of `mmd` in one exact subtraction
        and no event keeps its random Fourier features (D float32: 1 KB at D = 256)."""
        self._sample: dict[float, list[tuple[int, str]]] = {}
        """By the window end at which they leave, the (`sample_key`, id) of the mapped window
        events with the `domain_rows` smallest keys: the window's sample, the smallest keys of
        all of these, is found without ordering the window's events (an hour at 1,000/s is
        3.6M) and leaves a slide at a time with them."""
        self._unmapped: dict[str, Event] = {}
        """Window events not mapped yet: mapped in one batch at the next emission."""
        self.reference_f1 = reference.f1(threshold)
        self.policy = AlertPolicy(model, alerts, config, self.reference_f1, clock)
        self.window: dict[str, Event] = {}
        """Events inside the open window `[end - length, end)`, by inference id."""
        self.pending: dict[str, Event] = {}
        """Accepted events at or after `end`: they enter the window when it slides."""
        self._queue: list[tuple[float, str]] = []
        """Heap of (time, id) over window and pending events, oldest first, for eviction."""
        self.early_feedback: dict[str, tuple[float, int, float]] = {}
        """Feedback whose result has not arrived yet: id -> (time, count, mean)."""
        self._changed: dict[str, Event] = {}
        """Live events accepted or given feedback since the last snapshot (`changed_events`)."""
        self.end: float | None = None
        """End of the open window; None before the first result."""
        self.event_clock = Watermark(config.lateness_seconds, config.idle_seconds)

    # ---- input ---------------------------------------------------------------------------

    @property
    def watermark(self) -> float:
        return self.event_clock.value

    def idle(self) -> Output:
        """Emit the windows the wall clock closes once results stopped."""
        if self.event_clock.idle(self.clock()) and self.end is not None:
            return self._advance()
        return Output()

    def wake_at(self) -> float | None:
        """Wall time at which `idle` would close the open window; None if nothing would."""
        if self.end is None or not (self.window or self.pending):
            return None
        return self.event_clock.wake_at(self.end)

    def _next_boundary(self, time: float) -> float:
        """The first slide boundary after `time`: the end of the first window holding it."""
        slide = self.config.slide_seconds
        return (math.floor(time / slide) + 1) * slide

    def _start(self) -> float:
        assert self.end is not None
        return self.end - self.config.window_seconds

    def add_result(self, event: Event) -> Output:
        """Add one scored result; emits every window the advancing watermark closes."""
        if event.inference_id in self.window or event.inference_id in self.pending:
            return Output(duplicate=True)  # re-delivered: counted once
        if self.end is None:
            self.end = self._next_boundary(event.time)
        floor = max(self.watermark, self._start())
        if event.time < floor:
            return Output(
                rejected=f"late: event time {event.time:.3f}s is before the "
                f"{'watermark' if floor == self.watermark else 'open window start'} "
                f"{floor:.3f}s (allowed lateness {self.config.lateness_seconds:g}s)"
            )
        event.origin = None  # only a rejected event needs it (a parsed result: ~2.4 KB)
        early = self.early_feedback.pop(event.inference_id, None)
        if early is not None:
            _, event.feedback_count, event.feedback_mean = early
        heapq.heappush(self._queue, (event.time, event.inference_id))
        self._changed[event.inference_id] = event
        if event.time < self.end:
            self._enter(event)
        else:
            self.pending[event.inference_id] = event
        self.event_clock.observe(event.time, self.clock())
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
        self._changed[key] = event
        if in_window:
            self.feedback.update(event.p, event.label, mean)
        # The error stream: one minus the reward of the mean feedback, on the window the event
        # belongs to.
        error = 1.0 - reward(event.label, mean)
        identity = f"{event.inference_id}/{event.feedback_count}"
        end = self._next_boundary(event.time)
        return Output(alerts=self.policy.on_error(error, end, identity))

    # ---- window --------------------------------------------------------------------------

    def _enter(self, event: Event) -> None:
        self.window[event.inference_id] = event
        self._unmapped[event.inference_id] = event
        self.ks.update(event.p)
        self.cbpe.update(event.calibrated, event.label)
        if event.feedback_mean is not None:
            self.feedback.update(event.p, event.label, event.feedback_mean)

    def _leave(self, event: Event) -> None:
        self._changed.pop(event.inference_id, None)
        # An event that leaves before any emission mapped it never entered the MMD; the
        # mapped ones leave it together (`_leaving`).
        self._unmapped.pop(event.inference_id, None)
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
            else:
                self._skip_empty_slides()
            self.end += self.config.slide_seconds
            start = self._start()
            while self._queue and self._queue[0][0] < start:
                _, key = heapq.heappop(self._queue)
                self._leave(self.window.pop(key))
            gone = self._leaving.pop(self.end, None)
            if gone is not None:
                self.mmd.remove_sum(gone)
            self._sample.pop(self.end, None)
            for key in [k for k, e in self.pending.items() if e.time < self.end]:
                self._enter(self.pending.pop(key))
            self.early_feedback = {k: v for k, v in self.early_feedback.items() if v[0] >= start}
        return out

    def _skip_empty_slides(self) -> None:
        """With the window empty, move `end` to one slide before the first end at which a
        pending event enters or the watermark stops: nothing is emitted in between, and a
        result from 2000 followed by one from today would otherwise step through 400 million
        empty windows one at a time (a monitor frozen for hours)."""
        assert self.end is not None
        first_pending = self._queue[0][0] if self._queue else math.inf  # the window is empty
        target = min(self._next_boundary(self.watermark), self._next_boundary(first_pending))
        self.end = max(self.end, target - self.config.slide_seconds)

    def _map_entered(self) -> None:
        """Add the events that entered since the last emission to the MMD, in one batch, and
        to the sums and samples of the slides they leave with."""
        if not self._unmapped:
            return
        entered = list(self._unmapped.values())
        rows = decode_rows([e.features for e in entered], self.mmd.n_columns)
        z = self.mmd.features(rows)
        self.mmd.update(z)
        leave_at = self._leaving_ends(np.array([e.time for e in entered]))
        ranked = [(sample_key(e.inference_id), e.inference_id) for e in entered]
        for end in set(leave_at.tolist()):
            leaving = leave_at == end
            units, k = self.mmd.sum_of(z[leaving])
            units_before, k_before = self._leaving.get(end, (0, 0))
            self._leaving[end] = (units + units_before, k + k_before)
            candidates = [*self._sample.get(end, ()), *itertools.compress(ranked, leaving)]
            self._sample[end] = heapq.nsmallest(self.config.domain_rows, candidates)
        self._unmapped = {}

    def _window_sample(self) -> list[bytes]:
        """The feature rows of the window's sample, in event-time order: the `domain_rows`
        events with the smallest `sample_key` (all of them in a smaller window)."""
        chosen = heapq.nsmallest(
            self.config.domain_rows, itertools.chain.from_iterable(self._sample.values())
        )
        return [e.features for e in sorted((self.window[key] for _, key in chosen), key=_order)]

    def _leaving_ends(self, times: np.ndarray) -> np.ndarray:
        """The window end at which each event at `times` leaves: the first one whose start is
        past it, each end found by adding `slide` as `_advance` does, so that it equals the
        `end` that `_advance` reaches, float for float."""
        assert self.end is not None
        ends: list[float] = []
        end, latest = self.end, float(times.max())
        while not ends or ends[-1] - self.config.window_seconds <= latest:
            end += self.config.slide_seconds
            ends.append(end)
        starts = np.array([e - self.config.window_seconds for e in ends])
        return np.array(ends)[np.searchsorted(starts, times, side="right")]

    def events(self) -> list[Event]:
        """The events of the open window (for tests and the benchmark)."""
        return list(self.window.values())

    # ---- emission ------------------------------------------------------------------------

    def emit(self) -> Output:
        """The report of the open window as it is now, and the alerts it raises."""
        assert self.end is not None
        self._map_entered()
        seed = window_seed(self.model.name, self.model.version, self.end)
        drift = self.domain.run(seed, self._window_sample)
        estimated = self.cbpe.estimate()
        fb = self.feedback.value()
        report = DriftReport(
            model=self.model,
            window_start=as_utc(self._start()),
            window_end=as_utc(self.end),
            emitted_at=as_utc(self.clock()),
            n=self.ks.n,
            ks_d=self.ks.d(),
            ks_p_value=self.ks.p_value(),
            domain_auc=drift.auc,
            domain_auc_threshold=drift.threshold,
            feature_drift=drift.drifted,
            mmd=self.mmd.value(),
            mmd_threshold=self.mmd.threshold(),
            mmd_drift=self.mmd.drifted(),
            estimated=EstimatedPerformance.model_validate(estimated, from_attributes=True),
            reference_f1=self.reference_f1,
            feedback=FeedbackStats(
                n=fb.realized.n, brier=fb.brier, accuracy=fb.realized.accuracy, f1=fb.realized.f1
            ),
            contradiction=contradicts(estimated.f1, fb, self.config),
        )
        alerts = self.policy.on_report(report, mmd_p_value=self.mmd.p_value())
        return Output(reports=[report], alerts=alerts)

    # ---- recovery ------------------------------------------------------------------------

    def to_state(self, events: bool = True) -> dict[str, Any]:
        """Plain data for a Bytewax snapshot (the reference is reloaded, not snapshotted).

        The MMD sum is not in it: like the eviction heap it is derived from the events, which
        `from_state` maps again (in one batch, at the next emission). With `events=False` the
        events are left out too: the caller keeps them itself, from `changed_events`, and
        hands them back to `from_state` (a window of an hour holds ~1M events at 300/s, too
        many to pickle every second).
        """
        state = {
            "model": (self.model.name, self.model.version),
            "early_feedback": dict(self.early_feedback),
            "end": self.end,
            **self.event_clock.to_state(),
            "emissions": self.domain.emissions,
            "ks": self.ks.to_state(),
            "cbpe": self.cbpe.to_state(),
            "feedback": self.feedback.to_state(),
            **self.policy.to_state(),
        }
        if events:
            self._changed = {}
            state["window"] = [e.state() for e in self.window.values()]
            state["pending"] = [e.state() for e in self.pending.values()]
        return state

    def changed_events(self) -> list[tuple]:
        """The state of each live event accepted or given feedback since the last `to_state`
        or `changed_events`: what an append-only copy of the events needs to stay current
        (the latest state of an id wins; events older than the window's start are gone)."""
        changed = [e.state() for e in self._changed.values()]
        self._changed = {}
        return changed

    def live_events(self) -> list[tuple]:
        """The state of every event in the window or pending, for a fresh copy."""
        return [e.state() for e in (*self.window.values(), *self.pending.values())]

    @classmethod
    def from_state(
        cls,
        state: dict[str, Any],
        reference: Reference,
        config: MonitorSettings,
        alerts: AlertSettings,
        threshold: float,
        clock: Clock = wall_clock,
        events: Iterable[tuple] = (),
    ) -> ModelWindow:
        """Rebuild from `to_state()` with the model's reference, resumed at `clock()`. A state
        without its events takes them from `events`: event states in the order they changed
        (the latest of an id wins), of which those before the window's start have left it and
        those from its end on are pending."""
        name, version = state["model"]
        model = ModelRef(name=name, version=version)
        w = cls(model, reference, config, alerts, threshold, clock)
        w.end = state["end"]
        if "window" in state:
            w.window = {s[0]: Event(*s) for s in state["window"]}
            w.pending = {s[0]: Event(*s) for s in state["pending"]}
        elif w.end is not None:
            latest = {s[0]: s for s in events}
            start, end = w._start(), w.end
            live = sorted((Event(*s) for s in latest.values() if s[1] >= start), key=_order)
            w.window = {e.inference_id: e for e in live if e.time < end}
            w.pending = {e.inference_id: e for e in live if e.time >= end}
        w._unmapped = dict(w.window)
        w._queue = sorted(
            (e.time, e.inference_id) for e in (*w.window.values(), *w.pending.values())
        )
        w.early_feedback = dict(state["early_feedback"])
        w.event_clock = Watermark(config.lateness_seconds, config.idle_seconds, state)
        w.event_clock.resume(clock())
        w.domain.emissions = state["emissions"]
        w.ks = SlidingKS.from_state(state["ks"])
        w.cbpe = CBPE.from_state(state["cbpe"])
        w.feedback = FeedbackMetrics.from_state(state["feedback"])
        w.policy = AlertPolicy(model, alerts, config, w.reference_f1, clock, state)
        return w


def _order(event: Event) -> tuple[float, str]:
    """Event-time order, ties by id: the same on every replay."""
    return event.time, event.inference_id
