"""How long a Kafka source partition sleeps after polls that found nothing, and how late its
worker may wake (`flows.kafka`)."""

from __future__ import annotations

import ctypes
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from flows import kafka
from flows.fetching import Pacing
from flows.kafka import IDLE_SLEEPS, REQUEST_PATH_SLEEPS, KafkaInput, _Partition, _SharedConsumer
from flows.timerslack import set_timer_slack


class EmptyShared:
    """A shared consumer that never has a message; `idle` says whether it has been quiet."""

    def __init__(self, idle: bool, waited: bool = False) -> None:
        self._idle = idle
        self.waited = waited

    def add(self, topic: str, partition: int, offset: int) -> None:
        pass

    def take(self, topic: str, partition: int) -> list[Any]:
        return []

    def quiet_for(self) -> float:
        return 0.0

    def idle(self) -> bool:
        return self._idle

    def high_watermark(self, topic: str, partition: int) -> None:
        return None


NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def sleeps(source: KafkaInput, idle: bool, polls: int, monkeypatch: Any) -> list[float]:
    monkeypatch.setattr(source, "shared", lambda key: EmptyShared(idle))
    monkeypatch.setattr(kafka, "utc_now", lambda: NOW)
    part = _Partition(source, ("in", 1), "t", 0)
    part.start_at(None)
    out = []
    for _ in range(polls):
        assert part.next_batch() == []
        awake = part.next_awake()
        assert awake is not None
        out.append((awake - NOW).total_seconds())
    return out


@pytest.mark.parametrize(
    ("schedule", "idle", "expected"),
    [
        (IDLE_SLEEPS, False, [0.001, 0.005, 0.02, 0.05, 0.05]),
        (REQUEST_PATH_SLEEPS, False, [0.001, 0.002, 0.002, 0.002, 0.002]),
        (REQUEST_PATH_SLEEPS, True, [0.001, 0.005, 0.02, 0.05, 0.05]),  # quiet: back to idle's
    ],
)
def test_a_partition_backs_off_as_its_schedule_says(
    schedule: tuple[float, ...], idle: bool, expected: list[float], monkeypatch: Any
) -> None:
    source = KafkaInput("127.0.0.1:1", ["t"], 10, {}, sleeps=schedule)
    got = sleeps(source, idle, len(expected), monkeypatch)
    assert got == pytest.approx(expected)


def test_a_partition_whose_poll_waited_in_the_consumer_asks_to_be_polled_again_at_once(
    monkeypatch: Any,
) -> None:
    """An idle source given `idle_wait` has slept in its consumer already: no sleep on top."""
    source = KafkaInput("127.0.0.1:1", ["t"], 10, {}, sleeps=REQUEST_PATH_SLEEPS, idle_wait=0.1)
    monkeypatch.setattr(source, "shared", lambda key: EmptyShared(idle=True, waited=True))
    part = _Partition(source, ("in", 1), "t", 0)
    part.start_at(None)
    for _ in range(3):
        assert part.next_batch() == []
        assert part.next_awake() is None


def clocked(clock: Any, probe_every: float, **options: Any) -> _SharedConsumer:
    """A shared consumer (of no broker) idle after 2 s without a message by `clock`."""
    shared = _SharedConsumer(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}, 10, probe_every, **options
    )
    shared._pacing = Pacing(idle_after=2.0, probe_every=probe_every, clock=clock)
    return shared


PR_GET_TIMERSLACK = 30  # linux/prctl.h


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux timer slack")
def test_a_source_off_the_request_path_gives_its_worker_the_slack_for_busy_or_idle() -> None:
    """Read back from the kernel: the calling thread's timer slack, busy and then idle."""
    libc = ctypes.CDLL(None)
    now = [0.0]
    shared = clocked(
        lambda: now[0], probe_every=2.0, idle_slack_ms=200.0, take_every=0.2, busy_slack_ms=20.0
    )
    seen = []
    try:
        for at in (0.0, 3.0, 3.5):  # busy, idle (2 s without a message), a message came
            now[0] = at
            if at == 3.5:
                shared._pacing.woken()
            shared._slacken()
            seen.append(libc.prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0) / 1e6)
    finally:
        set_timer_slack(0)
        shared.close()
    assert seen == [20.0, 200.0, 20.0]


@pytest.mark.parametrize(
    ("idle", "busy_wait", "waited_for"),
    [(False, 0.0, None), (False, 0.002, 0.002), (True, 0.0, 0.1), (True, 0.002, 0.1)],
)
def test_a_source_waits_in_its_consumer_as_long_as_it_was_given_for_idle_or_busy(
    idle: bool, busy_wait: float, waited_for: float | None, monkeypatch: Any
) -> None:
    """`idle_wait` once idle, `busy_wait` while messages come; 0: a poll that returns at once."""
    now = [0.0]
    waits: list[float] = []

    def take_waiting(consumer: Any, most: int, timeout: float) -> list[Any]:
        waits.append(timeout)
        return []

    monkeypatch.setattr(kafka, "take_waiting", take_waiting)
    shared = clocked(
        lambda: now[0], probe_every=0.0, idle_slack_ms=0.0, idle_wait=0.1, busy_wait=busy_wait
    )
    now[0] = 3.0 if idle else 1.0
    try:
        shared._fetch()
    finally:
        shared.close()
    assert shared.waited is (waited_for is not None)
    assert waits == ([] if waited_for is None else [waited_for])
