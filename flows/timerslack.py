"""How late an idle flow's worker may wake up: Linux timer slack, so an idle flow costs (almost)
nothing.

Bytewax's worker loop (`src/worker.rs`, 0.21) parks for at most 1 ms between two steps, with or
without work, so every flow process wakes a thousand times a second: 1.4% of a core each when
idle, 8% for the six flows of a stack (measured). The kernel may delay a sleeping thread's timer
by its *timer slack* (50 us by default) to coalesce wake-ups. The flows' Kafka source
(`flows.kafka`) gives the worker thread a slack of `DRIFTLINE_FLOW_IDLE_TIMER_SLACK_MS` once
nothing has come for a while, and takes it back at the first message: about `1000 / (1 +
slack_ms)` wake-ups a second while idle (0.2% of a core at 50 ms). Busy, the flows off the
request path keep `DRIFTLINE_FLOW_BUSY_TIMER_SLACK_MS`: between two takes of their paced
consumer (every 0.2 s while messages trickle in) a worker woke a thousand times a second for
nothing; the inference flow keeps the default.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

PR_SET_TIMERSLACK = 29
"""`prctl` option (linux/prctl.h): the calling thread's timer slack, in nanoseconds; 0 gives
the thread its default back."""


def set_timer_slack(milliseconds: float) -> bool:
    """Set the calling thread's timer slack (0: the default again); False where the kernel has
    none."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_TIMERSLACK, int(milliseconds * 1_000_000), 0, 0, 0) != 0:
        log.warning("timer slack not set", extra={"errno": ctypes.get_errno()})
        return False
    return True
