"""Traffic share in the monitor: each model's inferences over all models' in the same window.

Windows are kept per model (`driftline.monitoring.window`), so no window sees the others'
traffic.
The window step passes on a `Tick` for every result it accepted (after de-duplication and the
lateness check) and every report it emits; this step, on a single key, counts the ticks per
model and slide and fills in each report's `share`. A report waits until the event time of
all traffic has passed its window end by the allowed lateness, so the other models' results for
that window have arrived; since the newest event overall is never older than the reporting
model's, that is usually at once.

Counts are kept for two window lengths behind the newest event; a report for an older window
(a model whose traffic stopped for that long) gets no share rather than a wrong one.

>>> from driftline.settings import MonitorSettings
>>> config = MonitorSettings(window_seconds=60, slide_seconds=30, lateness_seconds=5)
>>> share = TrafficShare(config, clock=lambda: 0.0)
>>> for t in (1.0, 2.0, 40.0):
...     share.add_tick(Tick("a/1", t))
>>> share.add_tick(Tick("b/1", 3.0))
>>> share.count("a/1", 0.0, 60.0), share.total(0.0, 60.0)
(3, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from driftline.clock import Clock
from driftline.monitoring.watermark import Watermark
from driftline.settings import MonitorSettings
from driftline.topics import DriftReport, decode


@dataclass(frozen=True)
class Tick:
    """One result a model's window accepted, at its event time (Unix seconds)."""

    model: str
    time: float


class TrafficShare:
    """Per-slide result counts of every model, and the reports waiting for their share."""

    def __init__(
        self, config: MonitorSettings, clock: Clock, state: dict[str, Any] | None = None
    ) -> None:
        """A new share step, or one resumed from `to_state()` at `clock()`."""
        self._slide = config.slide_seconds
        self._lateness = config.lateness_seconds
        self._clock = clock
        # Windows start and end on multiples of this, even when the length is not a multiple
        # of the slide.
        length_ms, slide_ms = (round(x * 1000) for x in (config.window_seconds, self._slide))
        self._width = math.gcd(length_ms, slide_ms) / 1000
        self._keep = 2 * config.window_seconds + self._lateness
        self.counts: dict[int, dict[str, int]] = {}
        """Bucket index (event time // width) -> model -> accepted results."""
        self.event_clock = Watermark(self._lateness, config.idle_seconds, state)
        self.floor: int | None = None
        """The oldest bucket still counted; older ones were dropped."""
        self.waiting: list[DriftReport] = []
        if state is not None:
            self.counts = {b: dict(models) for b, models in state["counts"].items()}
            self.floor = state["floor"]
            self.waiting = [decode(DriftReport, r) for r in state["waiting"]]
            self.event_clock.resume(clock())

    def add_tick(self, tick: Tick) -> None:
        bucket = math.floor(tick.time / self._width)
        models = self.counts.setdefault(bucket, {})
        models[tick.model] = models.get(tick.model, 0) + 1
        self.event_clock.observe(tick.time, self._clock())

    def add_report(self, report: DriftReport) -> None:
        self.waiting.append(report)

    def ready(self) -> list[DriftReport]:
        """The waiting reports whose window every model's traffic has passed, with `share`.

        The wall clock moves the watermark on once all traffic stopped.
        """
        self.event_clock.idle(self._clock())
        watermark = self.event_clock.value
        done = [r for r in self.waiting if r.window_end.timestamp() <= watermark]
        self.waiting = [r for r in self.waiting if r.window_end.timestamp() > watermark]
        out = [r.model_copy(update={"share": self._share(r)}) for r in done]
        self._forget_before(self.event_clock.newest - self._keep)
        return out

    def wake_at(self) -> float | None:
        """Wall time at which idleness would release the first waiting report."""
        if not self.waiting:
            return None
        return self.event_clock.wake_at(min(r.window_end.timestamp() for r in self.waiting))

    def count(self, model: str, start: float, end: float) -> int:
        return sum(self.counts.get(b, {}).get(model, 0) for b in self._buckets(start, end))

    def total(self, start: float, end: float) -> int:
        return sum(sum(self.counts.get(b, {}).values()) for b in self._buckets(start, end))

    def to_state(self) -> dict[str, Any]:
        return {
            "counts": {b: dict(models) for b, models in self.counts.items()},
            **self.event_clock.to_state(),
            "floor": self.floor,
            "waiting": [r.to_json() for r in self.waiting],
        }

    def _share(self, report: DriftReport) -> float | None:
        start, end = report.window_start.timestamp(), report.window_end.timestamp()
        if self.floor is not None and math.floor(start / self._width) < self.floor:
            return None  # counts for part of this window were dropped
        total = self.total(start, end)
        return min(1.0, report.n / total) if total else None

    def _buckets(self, start: float, end: float) -> range:
        return range(math.floor(start / self._width), math.ceil(end / self._width))

    def _forget_before(self, time: float) -> None:
        if not math.isfinite(time):
            return
        floor = math.floor(time / self._width)
        if self.floor is not None and floor <= self.floor:
            return
        self.floor = floor
        for bucket in [b for b in self.counts if b < floor]:
            del self.counts[bucket]
