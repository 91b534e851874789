"""The monitor flow through the running stack: out-of-domain texts raise drift and an alert.

The session stack runs the monitor with 20 s windows sliding every 2 s (conftest), so the test
takes about half a minute of real event time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
from confluent_kafka import Producer

from broker.clients import producer_config
from driftline.clock import utc_now
from driftline.settings import Settings
from driftline.topics import (
    ALERTS,
    DRIFT,
    REQUESTS,
    RESULTS,
    Alert,
    DriftReport,
    InferenceRequest,
    InferenceResult,
    ModelRef,
    decode,
    message_key,
)
from models.datasets import sentiment_binary, sms_texts
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_spine import lake_rows, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def send(s: Settings, producer: Producer, texts: Sequence[str], seconds: float) -> None:
    """Request scores for `texts`, spread evenly over `seconds` of real (= event) time."""
    started = time.monotonic()
    for i, text in enumerate(texts):
        request = InferenceRequest(inference_id=uuid.uuid4(), created_at=utc_now(), data=text)
        producer.produce(
            REQUESTS.name(s.kafka), key=message_key(REQUESTS, request), value=request.to_json()
        )
        producer.poll(0)
        time.sleep(max(0.0, started + seconds * (i + 1) / len(texts) - time.monotonic()))
    producer.flush(5)


def reports(s: Settings) -> list[DriftReport]:
    return [decode(DriftReport, v) for v in read_topic(s, DRIFT.name(s.kafka))]


def test_out_of_domain_texts_raise_feature_and_prediction_drift_and_an_alert(live: Stack) -> None:
    s = live.settings
    slide = s.monitor.slide_seconds
    producer = Producer(producer_config(s))
    tweets = sentiment_binary()["text"].sample(600, random_state=1).tolist()
    sms = sms_texts()["text"].sample(900, random_state=1).tolist()

    send(s, producer, tweets, seconds=10)
    switched = utc_now()
    send(s, producer, sms, seconds=20)  # one window length: the last window is mostly SMS
    sent_until = utc_now().timestamp()
    last_end = sent_until - s.monitor.lateness_seconds - slide

    def after_switch() -> tuple[DriftReport, list[DriftReport]] | None:
        # Per model: the last window before the switch, those holding a full slide of SMS, up
        # to the last window the final requests can close.
        found = sorted(reports(s), key=lambda r: r.window_end)
        for model in sorted({r.model for r in found}, key=str):
            mine = [r for r in found if r.model == model]
            before = [r for r in mine if r.window_end <= switched and r.n >= 50]
            after = [r for r in mine if r.window_end.timestamp() >= switched.timestamp() + slide]
            if before and after and after[-1].window_end.timestamp() >= last_end:
                return before[-1], after
        return None

    baseline, later = wait_until(after_switch, timeout=60)
    model, first, last = baseline.model, later[0], later[-1]
    assert first.window_end.timestamp() - switched.timestamp() < 2 * slide
    # Within five slides (a window up to half SMS) the shift shows as significant feature drift.
    # One slide (a tenth SMS) is too little to assert on: the in-domain AUC varies by more than
    # that shift moves it. Prediction drift is asserted on the last window only: at half SMS its
    # D (0.13 in two runs) is about two standard deviations of an in-domain D above the
    # baseline's (0.07), so "higher than the baseline" there would fail about one run in fifty.
    early = [r for r in later if r.window_end.timestamp() <= switched.timestamp() + 5 * slide]
    assert any(r.feature_drift for r in early), (baseline, early)
    assert last.feature_drift and last.domain_auc > 0.7, (baseline, last)
    # The in-domain window is a comparison, not a level: the domain check flags one in-domain
    # window in twenty at its alpha of 0.05 (a CI run met one: `feature_drift` True at baseline).
    assert baseline.domain_auc is not None and baseline.domain_auc < last.domain_auc
    assert last.share is not None and 0 < last.share <= 1
    # How far predictions move depends on the model (D was 0.16 to 0.3 for logreg over runs),
    # and the in-domain D is noise of its own (0.09 once, in a window of about a hundred): the
    # claim is significance, and a D above the in-domain one. Twice the in-domain D failed a CI.
    # At 1% the last window needs D > ~0.11 (n ~ 470 against ~400 reference scores); it had
    # 0.19-0.29 in the last runs, three standard deviations and more above that.
    assert last.ks_p_value < 0.01 and last.ks_d > baseline.ks_d, (baseline, last)

    def drift_alerts() -> set[str] | None:
        # The CBPE drop (a fixed level) can alert first; the drift statistics' rule (a CUSUM
        # over windows) needs a few windows more, so wait for one of theirs.
        found = [decode(Alert, v) for v in read_topic(s, ALERTS.name(s.kafka))]
        metrics = {a.metric for a in found if a.model == model and a.window_end > switched}
        return metrics & {"ks_d", "domain_auc", "mmd"} or None

    assert wait_until(drift_alerts, timeout=60)

    def stored() -> list[tuple] | None:  # the same report in the lake, once
        return (
            lake_rows(
                s,
                "SELECT n, ks_d, domain_auc FROM drift_metrics "
                "WHERE model_name = ? AND model_version = ? AND window_end = ?",
                [model.name, model.version, last.window_end],
            )
            or None
        )

    assert wait_until(stored, timeout=60) == [(last.n, last.ks_d, last.domain_auc)]

    def closed_by_idleness() -> list[DriftReport] | None:
        # No result is newer than `sent_until`, so only the wall clock can close a window
        # ending after it (DRIFTLINE_MONITOR_IDLE_SECONDS without traffic).
        found = [r for r in reports(s) if r.window_end.timestamp() > sent_until + slide]
        return found or None

    idle_limit = s.monitor.idle_seconds + s.monitor.lateness_seconds + 3 * slide + 15
    assert all(r.share is not None for r in wait_until(closed_by_idleness, timeout=idle_limit))


def test_monitor_resumes_after_kill_9_and_counts_every_result_once(live: Stack) -> None:
    """Every window reported around a `kill -9` holds exactly the results of its time range."""
    s = live.settings
    producer = Producer(producer_config(s))
    tweets = sentiment_binary()["text"].sample(700, random_state=2).tolist()
    started = utc_now()
    send(s, producer, tweets[:250], seconds=5)
    wait_until(lambda: any(r.window_end > started for r in reports(s)), timeout=20)
    time.sleep(2 * s.flows.snapshot_seconds)  # a snapshot holds some of the window
    killed_pid = live.kill("monitor")
    killed = utc_now()
    send(s, producer, tweets[250:450], seconds=4)  # queued in Kafka while the monitor restarts
    live.wait_restarted("monitor", killed_pid)
    send(s, producer, tweets[450:], seconds=5)
    last_end = utc_now().timestamp() - s.monitor.lateness_seconds - s.monitor.slide_seconds

    def caught_up() -> list[DriftReport] | None:
        found = [r for r in reports(s) if r.window_end > started]
        return (
            found if max((r.window_end.timestamp() for r in found), default=0) >= last_end else None
        )

    checked = wait_until(caught_up, timeout=60, every=1.0)
    results = [decode(InferenceResult, v) for v in read_topic(s, RESULTS.name(s.kafka))]
    by_model: dict[ModelRef, dict[str, float]] = {}
    for r in results:
        if r.model is not None and r.prediction is not None and not r.probe:
            by_model.setdefault(r.model, {})[str(r.inference_id)] = r.created_at.timestamp()
    emitted: dict[tuple, DriftReport] = {}
    for report in checked:
        times = by_model[report.model].values()
        start, end = report.window_start.timestamp(), report.window_end.timestamp()
        assert report.n == sum(start <= t < end for t in times), report
        key = (report.model, report.window_end)
        if key in emitted:  # a window re-emitted after the replay says the same
            assert report.ks_d == emitted[key].ks_d and report.n == emitted[key].n
        emitted[key] = report
    assert any(r.window_start < killed < r.window_end for r in checked), "none spans the crash"


def test_the_flows_that_load_models_leave_out_what_they_do_not_use(live: Stack) -> None:
    """Memory (issue 10): the monitor, the inference flow and the lake writer keep pandas out
    (`driftline.imports.keep_out`), and the monitor and the inference flow MLflow, whose
    SQLAlchemy store would show: their models come from a child process (`models.fetch`), the
    inference flow's aliases from `models.lookup`. Read off the libraries each process has
    mapped once the monitor has reported on a window of its own."""
    s = live.settings
    started = utc_now()
    tweets = sentiment_binary()["text"].sample(100, random_state=3).tolist()
    send(s, Producer(producer_config(s)), tweets, seconds=3)
    wait_until(lambda: any(r.window_end > started for r in reports(s)), timeout=60)

    def mapped(unit: str) -> str:
        return "".join(Path(f"/proc/{pid}/maps").read_text() for pid in live.pids(unit).values())

    for unit in ("monitor", "inference", "lakewriter"):
        assert "/site-packages/pandas/" not in mapped(unit), unit
    for unit in ("monitor", "inference"):
        assert "/site-packages/sklearn/" in mapped(unit)  # the check sees what is loaded
        assert "/site-packages/sqlalchemy/" not in mapped(unit), unit
