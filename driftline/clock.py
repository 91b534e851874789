"""Time, injected: every stateful unit takes a `Clock`, so tests move time by hand.

Event time is what a message says (`created_at`); processing time is what a `Clock` says. Pure
units never read the system clock themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], float]
"""Wall time in Unix seconds."""

wall_clock: Clock = time.time


def utc_now() -> datetime:
    """The event time driftline stamps: timezone-aware UTC with microseconds."""
    return datetime.now(UTC)


def as_utc(seconds: float) -> datetime:
    """Unix seconds as a timezone-aware UTC datetime (what Bytewax's `notify_at` takes)."""
    return datetime.fromtimestamp(seconds, UTC)
