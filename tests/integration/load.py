"""Steady load through the gateway while processes are killed, and the check that nothing the
gateway accepted was lost or stored twice."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from tests.integration.conftest import Stack, wait_until
from tests.integration.test_spine import lake_rows

Kill = Callable[[Stack], tuple[str, int]]
"""Kills one process of the stack; returns (unit, killed pid) to wait for its restart."""


def unit_process(unit: str, process: str | None = None) -> Kill:
    return lambda live: (unit, live.kill(unit, process))


@dataclass
class Load:
    """What the gateway accepted while the load ran."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    inferences: set[str] = field(default_factory=set)
    """Answered 200 or 504: published, so they must reach the lake."""
    feedback: dict[str, str] = field(default_factory=dict)
    """feedback_id -> inference_id, for every 202."""
    unanswered_feedback: set[str] = field(default_factory=set)
    """Inferences whose feedback request got no answer (the gateway worker was killed, say):
    the score may or may not have been published, so the lake may hold it or not."""
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def request(self, http: httpx.Client, i: int) -> None:
        try:
            answer = http.post("/inference", json={"data": f"{self.tag} request {i}"})
        except httpx.HTTPError:
            return
        with self.lock:
            self.statuses[answer.status_code] = self.statuses.get(answer.status_code, 0) + 1
        if answer.status_code not in (200, 504):
            return
        inference_id = answer.json()["inference_id"]
        with self.lock:
            self.inferences.add(inference_id)
        if answer.status_code == 200:
            try:
                patch = http.patch(
                    "/inference", json={"inference_id": inference_id, "feedback": i % 2}
                )
            except httpx.HTTPError:
                with self.lock:
                    self.unanswered_feedback.add(inference_id)
                return
            with self.lock:
                if patch.status_code == 202:
                    self.feedback[patch.json()["feedback_id"]] = inference_id
                elif patch.status_code >= 500:
                    self.unanswered_feedback.add(inference_id)


def run_load(live: Stack, rate: float, seconds: float, kills: list[tuple[float, Kill]]) -> Load:
    """`rate` requests/s for `seconds`; at each (second, kill) of `kills`, that kill. Returns
    once every killed unit runs again."""
    load = Load()
    killed: list[tuple[str, int]] = []
    started = time.monotonic()
    pending = sorted(kills, key=lambda k: k[0])
    with httpx.Client(base_url=live.url, timeout=30) as http, ThreadPoolExecutor(24) as pool:
        for i in range(int(seconds * rate)):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            while pending and time.monotonic() - started >= pending[0][0]:
                killed.append(pending.pop(0)[1](live))
            pool.submit(load.request, http, i)
    for unit, pid in killed:
        live.wait_restarted(unit, pid)
    return load


def assert_all_landed_once(live: Stack, load: Load, timeout: float = 120) -> dict[str, str]:
    """Every accepted inference and feedback score is in the lake, exactly once. Returns the
    stored feedback_id -> inference_id."""
    s, like = live.settings, f"{load.tag} request %"

    def inferences() -> list[tuple] | None:
        # Requests answered 504 may be stored too, so wait for the accepted ones by id, not for
        # a count: a count can be reached while an accepted inference is still on its way.
        rows = lake_rows(s, "SELECT inference_id FROM inferences WHERE data LIKE ?", [like])
        return rows if load.inferences <= {str(row[0]) for row in rows} else None

    try:
        stored = wait_until(inferences, timeout=timeout, every=1.0)
    except AssertionError:
        rows = lake_rows(s, "SELECT inference_id FROM inferences WHERE data LIKE ?", [like])
        missing = load.inferences - {str(row[0]) for row in rows}
        raise AssertionError(f"accepted, never stored: {missing}") from None
    assert len(stored) == len({str(row[0]) for row in stored})  # exactly once

    def feedback() -> list[tuple] | None:
        rows = lake_rows(
            s,
            "SELECT f.feedback_id, f.inference_id FROM feedback f JOIN inferences i "
            "USING (inference_id) WHERE i.data LIKE ?",
            [like],
        )
        return rows if load.feedback.keys() <= {str(r[0]) for r in rows} else None

    rows = wait_until(feedback, timeout=timeout, every=1.0)
    stored_feedback = {str(r[0]): str(r[1]) for r in rows}
    assert len(rows) == len(stored_feedback)  # each score once
    assert load.feedback.items() <= stored_feedback.items()
    # A score no one was told about can only come from a request whose answer was lost.
    unexpected = {
        feedback_id: inference_id
        for feedback_id, inference_id in stored_feedback.items()
        if feedback_id not in load.feedback and inference_id not in load.unanswered_feedback
    }
    assert not unexpected, unexpected
    return stored_feedback
