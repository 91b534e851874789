"""The lake writer's batches: flushed at a size or when the oldest row is old enough."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

from bytewax.operators import StatefulLogic

from flows.lakewriter import BatchLogic


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def row(i: int) -> tuple[str, dict]:
    return "inferences", {"inference_id": str(i)}


def test_a_steady_trickle_is_flushed_when_its_oldest_row_is_due() -> None:
    """Bytewax's `collect` moved its timeout with every row: a row every 0.25 s never came due."""
    clock = Clock()
    batch = BatchLogic(size=1000, seconds=1.0, resume=None, clock=clock)
    for i in range(4):
        assert batch.on_item(row(i)) == ([], StatefulLogic.RETAIN)
        clock.now += 0.25
    assert batch.notify_at().timestamp() == 1001.0  # the first row's time + 1 s
    assert batch.on_notify() == ([[row(i) for i in range(4)]], StatefulLogic.DISCARD)


def test_a_full_batch_goes_at_once_and_a_snapshot_resumes() -> None:
    clock = Clock()
    batch = BatchLogic(size=3, seconds=1.0, resume=None, clock=clock)
    batch.on_item(row(0))
    batch.on_item(row(1))
    resumed = BatchLogic(3, 1.0, pickle.loads(pickle.dumps(batch.snapshot())), clock)
    assert resumed.notify_at() == batch.notify_at()
    assert resumed.on_item(row(2)) == ([[row(0), row(1), row(2)]], StatefulLogic.DISCARD)


def test_the_state_of_bytewax_collect_resumes_and_is_due_at_once() -> None:
    clock = Clock()
    collected = SimpleNamespace(acc=[row(0)], timeout_at=None)  # `_CollectState`, duck-typed
    batch = BatchLogic(size=3, seconds=1.0, resume=collected, clock=clock)
    assert batch.notify_at().timestamp() == 1000.0
    assert batch.on_notify() == ([[row(0)]], StatefulLogic.DISCARD)
