"""When the supervisor starts a dead process again, and when it gives up.

A process that dies is restarted after a delay that starts short and doubles with each death in
a row, up to `longest`, so a broker restart costs the flows a second, not a crash loop that
burns a core. A process that stayed up for `healthy` seconds is forgiven its past deaths. One
that dies `limit` times within `window` seconds is broken, not unlucky: the supervisor stops
and says so.

>>> now = [0.0]
>>> policy = RestartPolicy(clock=lambda: now[0], first=0.5, longest=4.0, limit=4, window=60.0)
>>> [policy.died() for _ in range(3)]
[0.5, 1.0, 2.0]
>>> policy.died() is None            # a fourth death within a minute: give up
True
>>> now[0] = 500.0; policy.started(); now[0] = 600.0
>>> policy.died()                    # up for 100 s: forgiven, short delay again
0.5
"""

from __future__ import annotations

from collections import deque

from driftline.clock import Clock


class RestartPolicy:
    def __init__(
        self,
        clock: Clock,
        first: float = 0.5,
        longest: float = 10.0,
        limit: int = 10,
        window: float = 120.0,
        healthy: float = 60.0,
    ) -> None:
        self._clock = clock
        self._first, self._longest = first, longest
        self._limit, self._window, self._healthy = limit, window, healthy
        self._deaths: deque[float] = deque()
        self._in_a_row = 0
        self._started_at: float | None = None

    def started(self) -> None:
        self._started_at = self._clock()

    def died(self) -> float | None:
        """The delay before the next start, or None when the process keeps dying."""
        now = self._clock()
        if self._started_at is not None and now - self._started_at >= self._healthy:
            self._in_a_row = 0
        self._deaths.append(now)
        while self._deaths and self._deaths[0] < now - self._window:
            self._deaths.popleft()
        if len(self._deaths) >= self._limit:
            return None
        delay = min(self._longest, self._first * 2**self._in_a_row)
        self._in_a_row += 1
        return delay
