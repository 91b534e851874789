"""When the flows' Kafka source takes a message, and when it fetches at all: two small state
machines with injected clocks, used by `flows.kafka.KafkaInput`.

- `Contiguous`: offsets must follow on. tansu reserves a batch's offsets before it writes the
  batch, so a fetch can return a later batch before an earlier one is visible; the source then
  re-reads from the expected offset, for up to `GAP_GRACE` seconds.
- `Pacing`: an idle consumer fetches only now and then, so an idle stack costs the broker
  (almost) nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

log = logging.getLogger(__name__)

GAP_GRACE = 5.0
"""Seconds a gap in a partition's offsets may take to fill before it is taken as real (a batch
whose offsets were reserved and never written, or messages retention removed)."""


class Contiguous:
    """Per partition, whether a message's offset follows on from the last one taken.

    >>> now = [0.0]
    >>> offsets = Contiguous(grace=5.0, clock=lambda: now[0])
    >>> offsets.start("t", 0, 10)
    >>> offsets.check("t", 0, 10), offsets.check("t", 0, 13)   # 11 and 12 not visible yet
    ('take', 'rewind')
    >>> offsets.check("t", 0, 11), offsets.check("t", 0, 11)   # they showed up; 11 re-delivered
    ('take', 'old')
    >>> offsets.check("t", 0, 20); now[0] = 6.0; offsets.check("t", 0, 20)  # a real gap
    'rewind'
    'take'
    >>> offsets.expected("t", 0)
    21
    """

    def __init__(self, grace: float, clock: Any = time.monotonic) -> None:
        self._grace, self._clock = grace, clock
        self._next: dict[tuple[str, int], int | None] = {}
        self._gap_since: dict[tuple[str, int], float] = {}

    def start(self, topic: str, partition: int, offset: int | None) -> None:
        """`offset` None: the partition starts wherever its first message is."""
        self._next[(topic, partition)] = offset

    def expected(self, topic: str, partition: int) -> int | None:
        return self._next.get((topic, partition))

    def check(self, topic: str, partition: int, offset: int) -> str:
        """`take` it, skip it as `old` (already taken), or `rewind` to the expected offset."""
        key = (topic, partition)
        expected = self._next.get(key)
        if expected is not None and offset < expected:
            return "old"
        if expected is not None and offset > expected:
            since = self._gap_since.setdefault(key, self._clock())
            if self._clock() - since < self._grace:
                return "rewind"
            log.warning(
                "offsets skipped",
                extra={"topic": topic, "partition": partition, "from": expected, "to": offset},
            )
        self._gap_since.pop(key, None)
        self._next[key] = offset + 1
        return "take"


class Pacing:
    """Whether an idle consumer should be fetching: all the time while messages come, then,
    after `idle_after` seconds without one, only for `probe_for` seconds every `probe_every`.

    A fetching consumer sends the broker a fetch every `fetch.wait.max.ms` even when nothing
    comes, for every partition it reads: the whole idle cost of a stack. Paused between probes it
    sends none. The first message after a quiet spell waits up to a probe interval, plus the
    0.7-1 s librdkafka takes to fetch again after a resume (measured): fine for the monitoring
    flows, not for the request path, whose flows fetch all the time (`KafkaInput(pace=False)`).

    >>> now = [0.0]
    >>> pacing = Pacing(idle_after=2.0, probe_every=0.5, probe_for=0.1, clock=lambda: now[0])
    >>> pacing.fetching()
    True
    >>> now[0] = 2.05; pacing.fetching()          # quiet for 2 s: paused
    False
    >>> now[0] = 2.45; pacing.fetching()          # a probe, at the end of each interval
    True
    >>> now[0] = 2.55; pacing.fetching()          # probe over, still nothing
    False
    >>> now[0] = 2.95; pacing.fetching(); pacing.received(3); pacing.fetching()
    True
    True
    """

    def __init__(
        self,
        idle_after: float = 2.0,
        probe_every: float = 4.0,
        probe_for: float = 1.2,
        clock: Any = time.monotonic,
    ) -> None:
        self._idle_after, self._every, self._for = idle_after, probe_every, probe_for
        self._clock = clock
        self._last_message = clock()

    def received(self, messages: int) -> None:
        if messages:
            self._last_message = self._clock()

    def fetching(self) -> bool:
        idle = self._clock() - self._last_message - self._idle_after
        return idle < 0 or idle % self._every >= self._every - self._for

    def until_probe(self) -> float:
        """Seconds until the next probe starts; 0 while fetching.

        >>> now = [0.0]
        >>> pacing = Pacing(idle_after=2.0, probe_every=4.0, probe_for=1.0, clock=lambda: now[0])
        >>> now[0] = 10.0; pacing.until_probe()   # idle 8 s past the 2: probes at 3-4 s of each 4
        3.0
        """
        idle = self._clock() - self._last_message - self._idle_after
        if self.fetching():
            return 0.0
        return (self._every - self._for) - idle % self._every
