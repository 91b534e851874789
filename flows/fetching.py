"""When the flows' Kafka source takes a message, and when it fetches at all: two small state
machines with injected clocks, used by `flows.kafka.KafkaInput`.

- `Contiguous`: offsets must follow on. tansu reserves a batch's offsets before it writes the
  batch, so a fetch can return a later batch before an earlier one is visible; the source then
  re-reads from the expected offset, for up to `GAP_GRACE` seconds.
- `Pacing`: when a consumer is idle; an idle consumer off the request path stops fetching and
  only looks at its partitions' end offsets now and then, so an idle stack costs the broker
  little.
- `Cadence`: how often a busy consumer off the request path takes what it fetched, so that it
  fetches a few times a second instead of once per message or two.
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
        self._next: dict[tuple[str, int], int] = {}
        self._gap_since: dict[tuple[str, int], float] = {}

    def start(self, topic: str, partition: int, offset: int) -> None:
        """The partition's first message must be at `offset` (a partition read from the
        beginning starts at its log start, not wherever its first visible message is)."""
        self._next[(topic, partition)] = offset

    def expected(self, topic: str, partition: int) -> int:
        return self._next[(topic, partition)]

    def check(self, topic: str, partition: int, offset: int) -> str:
        """`take` it, skip it as `old` (already taken), or `rewind` to the expected offset."""
        key = (topic, partition)
        expected = self._next[key]
        if offset < expected:
            return "old"
        if offset > expected:
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
    """Whether a consumer is idle (no message for `idle_after` seconds) and, with `probe_every`,
    whether it should be fetching: an idle consumer then stops and, every `probe_every` seconds,
    looks whether its partitions have grown (the caller asks the broker for their end offsets:
    one request that returns at once), fetching again when one has.

    A fetching consumer sends the broker a fetch every `fetch.wait.max.ms` even when nothing
    comes, and tansu looks at its storage several times within each: most of the idle cost of a
    stack. Stopped it sends none; a look at the end offsets costs the broker and its store one
    look-up per partition. The first message after a quiet spell waits up to a probe interval,
    so the request path (`probe_every` 0) never stops: at a tenth of a second, the looks cost
    more than its fetches (measured).

    >>> now = [0.0]
    >>> pacing = Pacing(idle_after=2.0, probe_every=3.0, clock=lambda: now[0])
    >>> pacing.idle(), pacing.fetching(), pacing.probe_due()
    (False, True, False)
    >>> now[0] = 2.05; pacing.idle(), pacing.fetching(), pacing.probe_due()  # quiet for 2 s
    (True, False, False)
    >>> now[0] = 5.0; pacing.probe_due(), pacing.probe_due()   # one probe per interval
    (True, False)
    >>> pacing.until_probe()
    3.0
    >>> pacing.woken(); pacing.fetching()                      # the probe found messages
    True
    >>> always = Pacing(probe_every=0, clock=lambda: now[0]); now[0] = 60.0
    >>> always.idle(), always.fetching(), always.probe_due(), always.until_probe()
    (True, True, False, 0.0)
    """

    def __init__(
        self, idle_after: float = 2.0, probe_every: float = 3.0, clock: Any = time.monotonic
    ) -> None:
        self._idle_after, self._every = idle_after, probe_every
        self._clock = clock
        self.woken()

    def received(self, messages: int) -> None:
        if messages:
            self.woken()

    def woken(self) -> None:
        """Messages came, or wait to be fetched: fetch until `idle_after` passes without one."""
        self._last_message = self._clock()
        self._next_probe = self._last_message + self._idle_after + self._every

    def idle(self) -> bool:
        return self._clock() - self._last_message >= self._idle_after

    def fetching(self) -> bool:
        return self._every <= 0 or not self.idle()

    def probe_due(self) -> bool:
        """True once per `probe_every` seconds while stopped: time to look at the end offsets."""
        now = self._clock()
        if self.fetching() or now < self._next_probe:
            return False
        self._next_probe = now + self._every
        return True

    def until_probe(self) -> float:
        """Seconds until the next probe is due; 0 while fetching."""
        if self.fetching():
            return 0.0
        return max(self._next_probe - self._clock(), 0.0)


class Cadence:
    """How often a consumer off the request path takes what it has fetched while messages
    trickle in (at most every `every` seconds; at once after a full batch), and whether they
    come fast enough (`busy_rate` a second, this second or the last) to read with a consumer
    that fetches ahead instead.

    tansu answers a fetch as soon as anything is new, and each answer costs it a listing of the
    partition's stored batches (as long as ~3 s of traffic under load): a consumer that takes
    every message as it comes makes one fetch per message or two. A paced consumer fetches only
    while its queue is empty (`queued.min.messages` 1), so taking less often means fewer,
    larger fetches. It never fetches while the flow works, though: alone, it left the lake
    writer 8-15 s behind 3,000 texts/s of batches (1-3 s fetching ahead), hence `busy`.

    >>> now = [0.0]
    >>> cadence = Cadence(every=0.2, busy_rate=500, clock=lambda: now[0])
    >>> cadence.due(), cadence.busy()                   # the first take
    (True, False)
    >>> cadence.took(40, full=False); cadence.due()     # 40 messages came
    False
    >>> now[0] = 0.2; cadence.due()
    True
    >>> cadence.took(500, full=True); cadence.due()     # a backlog: take the next at once
    True
    >>> cadence.busy()                                  # 540 this second
    True
    >>> now[0] = 1.5; cadence.busy()                    # the last second's 540 still count
    True
    >>> now[0] = 2.1; cadence.busy()                    # a quiet second since
    False
    >>> Cadence(every=0, busy_rate=1).due()
    True
    """

    def __init__(self, every: float, busy_rate: int, clock: Any = time.monotonic) -> None:
        self._every, self._busy_rate, self._clock = every, busy_rate, clock
        self._next = float("-inf")
        self._second = int(clock())
        self._counts = [0, 0]
        """Messages taken in the last second and in this one."""

    def due(self) -> bool:
        return self._every <= 0 or self._clock() >= self._next

    def busy(self) -> bool:
        self._roll()
        return max(self._counts) >= self._busy_rate

    def took(self, messages: int, full: bool) -> None:
        """A take brought `messages`; `full`: as many as one take may."""
        self._roll()
        self._counts[1] += messages
        self._next = float("-inf") if full else self._clock() + self._every

    def _roll(self) -> None:
        second = int(self._clock())
        if second != self._second:
            self._counts = [self._counts[1] if second == self._second + 1 else 0, 0]
            self._second = second
