"""The monitor's event-time watermark, which the wall clock moves on once events stop.

The watermark is the newest event time seen minus the allowed lateness: a window ending at or
before it is complete. Event time alone would leave the last windows open for good once traffic
stops (a retired model version, a quiet night). So after `idle` seconds of wall time without
events, the watermark moves on as if events kept arriving at wall-clock pace. It never moves
back. Downtime is not idleness: after a restart the backlog is on its way, possibly slowly (models
load first), so idleness starts counting one idle period after the resume.

>>> w = Watermark(lateness=5.0, idle=60.0)
>>> w.observe(100.0, now=1000.0)
>>> w.value
95.0
>>> w.wake_at(120.0)  # wall time at which idleness would carry it to 120
1085.0
>>> w.idle(now=1070.0), w.value
(True, 105.0)
"""

from __future__ import annotations

import math
from typing import Any


class Watermark:
    def __init__(self, lateness: float, idle: float, state: dict[str, Any] | None = None) -> None:
        """`idle` <= 0: only events move the watermark."""
        self.lateness = lateness
        self.idle_seconds = idle
        state = state or {}
        self.newest: float = state.get("newest", -math.inf)
        self._by_idleness: float = state.get("idle_watermark", -math.inf)
        self.seen_at: float | None = None
        """Wall time of the last event (or of the resume); idleness counts from it."""

    @property
    def value(self) -> float:
        return max(self.newest - self.lateness, self._by_idleness)

    def observe(self, time: float, now: float | None = None) -> None:
        """An event at `time`; `now` (wall time) restarts the idle count."""
        self.newest = max(self.newest, time)
        if now is not None:
            self.seen_at = now

    def resume(self, now: float) -> None:
        """After a restart at `now`: idleness counts from one idle period later."""
        self.seen_at = now + max(0.0, self.idle_seconds)

    def idle(self, now: float) -> bool:
        """Move on by the wall time past the idle limit; returns whether the value grew."""
        if self.idle_seconds <= 0 or self.seen_at is None:
            return False
        credit = now - self.seen_at - self.idle_seconds
        if credit <= 0 or self.newest - self.lateness + credit <= self._by_idleness:
            return False
        before = self.value
        self._by_idleness = self.newest - self.lateness + credit
        return self.value > before

    def wake_at(self, target: float) -> float | None:
        """Wall time at which idleness alone would carry the watermark to `target`."""
        if self.idle_seconds <= 0 or self.seen_at is None:
            return None
        behind = target - (self.newest - self.lateness)
        return self.seen_at + self.idle_seconds + max(0.0, behind)

    def to_state(self) -> dict[str, Any]:
        return {"newest": self.newest, "idle_watermark": self._by_idleness}
