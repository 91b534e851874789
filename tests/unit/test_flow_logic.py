"""The thin Bytewax wrappers: timers, discard, throttled emission and snapshot round trips."""

from __future__ import annotations

from datetime import timedelta

from bytewax.operators import StatefulLogic

from driftline import settings
from driftline.ab.ledger import IdLedger
from driftline.tables import AB_METRICS
from driftline.topics import AB, DEADLETTER, LABELED
from flows.ab import Changed, LedgerLogic, ReportLogic
from flows.feedback import JoinLogic, labeled_of
from flows.wiring import Parsed
from tests.factories import make_feedback, make_result


class Clock:
    """Wall time the test sets by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_join_logic_times_out_early_feedback_and_survives_a_snapshot() -> None:
    clock = Clock()
    result = make_result()
    logic = JoinLogic(ttl=10.0, resume=None, clock=clock)
    fb = Parsed(make_feedback(result.inference_id, 1.0), "inference.feedback", 0, 1)
    assert logic.on_item(fb) == ([], StatefulLogic.RETAIN)
    assert logic.notify_at().timestamp() == 1010.0
    logic = JoinLogic(10.0, logic.snapshot(), clock)  # restored after a crash
    clock.now = 1005.0
    out, _ = logic.on_item(Parsed(result, "inference.results", 0, 2))
    assert [o.topic for o in out] == [LABELED]
    assert logic.notify_at().timestamp() == 1015.0  # the result is held for 10 s after arrival
    clock.now = 1014.0
    assert logic.on_notify() == ([], StatefulLogic.RETAIN)
    clock.now = 1015.0
    assert logic.on_notify() == ([], StatefulLogic.DISCARD)

    lonely = JoinLogic(ttl=10.0, resume=None, clock=clock)
    lonely.on_item(Parsed(make_feedback(make_result().inference_id, 0.0), "t", 0, 3))
    clock.now += 10.0
    out, discard = lonely.on_notify()
    assert [o.topic for o in out] == [DEADLETTER] and discard is StatefulLogic.DISCARD


def test_a_report_adding_older_changes_than_the_last_one_is_stored_under_a_key_of_its_own() -> None:
    """Feedback read before its result (two topics, each read at its own pace): the result's
    event time is older than the feedback's, so both reports cover the same newest event time.
    Keyed by that time alone, the lake kept the first report and dropped every later one."""
    clock = Clock()
    logic = ReportLogic(settings.load(ab_report_seconds=2.0), None, clock)
    ledger = IdLedger(horizon=60.0)
    result = make_result(experiment="e", arm="A")
    labeled = labeled_of(result, [1.0], result.created_at + timedelta(seconds=5))
    reports = []
    for changes in (ledger.on_labeled(labeled), ledger.on_result(result)):
        (change,) = changes
        (report,), _ = logic.on_item(Changed("e", change))
        reports.append(report.message)
        clock.now += 2.0
    first, second = reports
    assert first.emitted_at == second.emitted_at  # the result added no newer event time
    assert [a.traffic for a in first.arms] == [0] and [a.traffic for a in second.arms] == [1]
    keys = [tuple(AB_METRICS.row(r)[column] for column in AB_METRICS.key) for r in reports]
    assert keys[0] != keys[1], keys


def test_a_ledger_passes_changes_on_once_and_is_dropped_after_a_quiet_time_to_live() -> None:
    clock = Clock()
    config = settings.load(feedback_ttl_seconds=60.0)
    logic = LedgerLogic(config, None, clock)
    result = Parsed(make_result(experiment="e", arm="A"), "inference.results", 0, 0)
    (changed,), _ = logic.on_item(result)
    assert changed.experiment == "e" and changed.change.arm == "A"
    clock.now += 30.0
    logic = LedgerLogic(config, logic.snapshot(), clock)  # restarted
    assert logic.on_item(result) == ([], StatefulLogic.RETAIN)  # re-delivered: nothing
    assert logic.notify_at().timestamp() == 1090.0  # a time-to-live after the last message
    assert logic.on_notify() == ([], StatefulLogic.DISCARD)


def test_report_logic_emits_changes_at_most_every_interval() -> None:
    clock = Clock()
    config = settings.load(ab_report_seconds=2.0)
    logic = ReportLogic(config, None, clock)

    def item(arm: str) -> Changed:
        (traffic,) = IdLedger(horizon=60.0).on_result(make_result(experiment="e", arm=arm))
        return Changed("e", traffic)

    first, _ = logic.on_item(item("A"))
    assert [o.topic for o in first] == [AB]
    clock.now += 1.0
    assert logic.on_item(item("B")) == ([], StatefulLogic.RETAIN)  # throttled
    assert logic.notify_at().timestamp() == 1002.0
    logic = ReportLogic(config, logic.snapshot(), clock)
    clock.now += 1.0
    (report,), _ = logic.on_notify()
    assert [a.traffic for a in report.message.arms] == [1, 1]
    assert logic.notify_at() is None  # nothing new: no timer, no report
