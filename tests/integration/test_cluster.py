"""The cluster profile on one machine: PostgreSQL, the object store, an MLflow server, the broker
on its log store, every flow as a 2-process Bytewax cluster and 2 gateway workers on one port.

Under load, kill -9 of the broker, of both storage servers, of one process of every flow and of
one gateway worker: every accepted inference lands in the lake exactly once, its feedback is
joined, and the monitor still reports drift.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.topology import BROKER, FLOWS, LOGSTORE
from driftline.settings import Settings
from driftline.topics import (
    DEADLETTER,
    DRIFT,
    FEEDBACK,
    LABELED,
    RESULTS,
    DeadLetter,
    DriftReport,
    Labeled,
    decode,
)
from tests.integration.conftest import Stack, make_settings, read_later, wait_until
from tests.integration.load import Kill, assert_all_landed_once, run_load, unit_process
from tests.integration.test_spine import lake_rows, read_messages, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def gateway_worker(live: Stack) -> tuple[str, int]:
    """Kill one of uvicorn's workers; uvicorn, not the supervisor, starts a new one."""
    [parent] = live.pids("gateway").values()
    workers = [
        pid
        for pid in children_of(parent)
        if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()
    ]
    assert len(workers) == live.settings.gateway.workers, workers
    os.kill(workers[0], signal.SIGKILL)
    wait_until(lambda: workers[0] not in children_of(parent) and len(children_of(parent)) > 1)
    return "gateway", -1  # the gateway unit itself keeps running


def where(s: Settings, topic: str, ids: set[str]) -> dict[str, list[tuple[int, int]]]:
    """Per inference id of `ids`: the (partition, offset) of each message keyed by it."""
    found: dict[str, list[tuple[int, int]]] = {}
    for msg in read_messages(s, topic):
        key = (msg.key() or b"").decode()
        if key in ids:
            found.setdefault(key, []).append((msg.partition() or 0, msg.offset() or 0))
    return found


def unjoined(s: Settings, wanted: set[str]) -> str:
    """Why feedback was not joined: where each unjoined id's result and feedback are."""
    seen = {str(decode(Labeled, v).inference_id) for v in read_topic(s, LABELED.name(s.kafka))}
    missing = wanted - seen
    results = where(s, RESULTS.name(s.kafka), missing)
    feedback = where(s, FEEDBACK.name(s.kafka), missing)
    dead = [decode(DeadLetter, v) for v in read_topic(s, DEADLETTER.name(s.kafka))]
    lines = [f"{len(missing)} of {len(wanted)} inferences with feedback never labeled:"]
    lines += [f"  {i}: results at {results.get(i)}, feedback at {feedback.get(i)}" for i in missing]
    lines += [f"  dead letter: {d.flow} {d.reason} {d.key}" for d in dead if d.key in missing]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_settings(
        tmp_path_factory.mktemp("cluster"), profile="cluster", model_bootstrap_sample=2000
    )
    assert (s.flows.processes, s.gateway.workers, s.lake.writers) == (2, 2, 2)
    stack = Stack(s)
    stack.start(timeout=420)  # servers, then two quick models trained through the MLflow server
    try:
        yield stack
    finally:
        stack.stop()


def test_the_cluster_survives_kill_9_of_every_kind_of_process(cluster: Stack) -> None:
    s = cluster.settings
    units = cluster.state()["units"]
    assert {name for name, unit in units.items() if unit["server"]} == {
        "objectstore",
        "postgres",
        "mlflow",
        LOGSTORE,
        BROKER,
    }
    assert all(len(units[flow]["processes"]) == 2 for flow in FLOWS)
    kills: list[tuple[float, Kill]] = [
        (3.0, unit_process(BROKER)),
        (8.0, unit_process(LOGSTORE)),
        (13.0, unit_process("objectstore")),
        (18.0, gateway_worker),
    ]
    kills += [(21.0 + 3 * i, unit_process(flow, f"{flow}-{i % 2}")) for i, flow in enumerate(FLOWS)]
    read_later(s, [t.name(s.kafka) for t in (RESULTS, FEEDBACK, LABELED, DRIFT, DEADLETTER)])
    load = run_load(cluster, rate=20, seconds=40, kills=kills)
    finished = time.time()
    assert load.statuses.get(200, 0) > 400, load.statuses
    stored_feedback = assert_all_landed_once(cluster, load, timeout=180)

    # Feedback joined: every inference with a stored score shows up labeled.
    wanted = set(stored_feedback.values())

    def labeled() -> set[str] | None:
        seen = {str(decode(Labeled, v).inference_id) for v in read_topic(s, LABELED.name(s.kafka))}
        return seen if wanted <= seen else None

    try:
        wait_until(labeled, timeout=120, every=2.0)
    except AssertionError:
        raise AssertionError(unjoined(s, wanted)) from None
    joined = lake_rows(
        s,
        "SELECT count(*) FROM inferences_with_feedback WHERE data LIKE ? AND len(feedback) > 0",
        [f"{load.tag} request %"],
    )[0][0]
    assert joined == len(wanted)

    # The monitor still reports: windows that end after the last kill.
    def recent_reports() -> list[DriftReport] | None:
        reports = [decode(DriftReport, v) for v in read_topic(s, DRIFT.name(s.kafka))]
        last = max((r.window_end for r in reports), default=None)
        return reports if last is not None and last.timestamp() > finished else None

    wait_until(recent_reports, timeout=120, every=2.0)
