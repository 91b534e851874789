"""The monitor's window logic against brute force: every reported statistic is recomputed from
the raw events of the same window with scipy and scikit-learn."""

from __future__ import annotations

import dataclasses
import doctest
import pickle
import signal
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, mean_squared_error

import driftline.monitoring.window
from driftline.monitoring.domain import sample_key
from driftline.monitoring.reference import Reference
from driftline.monitoring.rows import decode_rows, encode_row
from driftline.monitoring.window import Event, ModelWindow, Output
from driftline.settings import AlertSettings, MonitorSettings
from driftline.stats import domain_auc
from driftline.topics import DriftReport, Labeled
from tests.unit.monitor_support import MODEL, model_window, window_settings


class Squash:
    """A calibrator that is not the identity, so CBPE must use the calibrated value."""

    def predict(self, p: np.ndarray) -> np.ndarray:
        return 0.1 + 0.8 * np.asarray(p, dtype=float)


def reference(rng: np.random.Generator, n: int = 300) -> Reference:
    p = rng.beta(2, 2, size=n)
    return Reference(p, (rng.uniform(size=n) < p).astype(int), rng.normal(size=(n, 4)), Squash())


@dataclass
class Truth:
    """What the test knows independently: accepted events and their latest feedback."""

    events: dict[str, tuple[float, float, int, np.ndarray]] = field(default_factory=dict)
    feedback: dict[str, tuple[int, float]] = field(default_factory=dict)

    def window(self, start: float, end: float) -> list[str]:
        return [k for k, (t, *_) in self.events.items() if start <= t < end]


def labeled(key: str, time: float, p: float, label: int, scores: list[float]) -> Labeled:
    return Labeled(
        inference_id=uuid.UUID(key),
        created_at=datetime.fromtimestamp(time, UTC),
        model=MODEL,
        prediction=p,
        label=label,
        feedback=scores,
        feedback_mean=float(np.mean(scores)),
        updated_at=datetime.fromtimestamp(time, UTC),
    )


def simulate(
    config: MonitorSettings, seed: int = 0, n: int = 1500
) -> tuple[Reference, list[tuple[DriftReport, Truth, dict]], list[str], ModelWindow]:
    """A stream with jitter, duplicates, late events, feedback updates and a drift halfway.

    Returns every report with a frozen copy of the truth at the moment it was emitted.
    """
    rng = np.random.default_rng(seed)
    ref = reference(rng)
    w = model_window(ref, config, ALERTS)
    truth, reports, rejected = Truth(), [], []
    sent: list[tuple[str, float, float, int]] = []
    for i in range(n):
        drifted = i > n // 2
        t = 1000.0 + i * 0.2 + rng.uniform(-config.lateness_seconds * 0.8, 0)
        if i % 97 == 0 and i:
            t -= config.lateness_seconds * 3  # too late
        p = float(rng.beta(5, 1.5) if drifted else rng.beta(2, 2))
        x = rng.normal(1.5 if drifted else 0.0, 1.0, size=4)
        key = str(uuid.UUID(int=int(rng.integers(2**63))))
        label = int(p >= 0.5)
        cal = float(Squash().predict(p))
        event = Event(key, t, p, cal, label, encode_row(x))
        out = w.add_result(event)
        if out.rejected is None:
            truth.events[key] = (t, p, label, x.astype(np.float32).astype(np.float64))
            sent.append((key, t, p, label))
        else:
            rejected.append(out.rejected)
        if i % 13 == 0:  # a re-delivered copy
            again = w.add_result(Event(key, t, p, cal, label, encode_row(x)))
            assert not again.reports and (again.rejected is None) == (out.rejected is None)
        record(w, out, truth, reports)
        if sent and rng.uniform() < 0.6:  # feedback on a recent result, sometimes updated
            k, tk, pk, lk = sent[int(rng.integers(max(0, len(sent) - 50), len(sent)))]
            count = truth.feedback.get(k, (0, 0.0))[0] + 1
            scores = [float(rng.uniform() < pk) for _ in range(count)]
            fb_out = w.add_labeled(labeled(k, tk, pk, lk, scores))
            if k in w.window or k in w.pending:
                truth.feedback[k] = (count, float(np.mean(scores)))
            w.add_labeled(labeled(k, tk, pk, lk, scores[:1]))  # a stale re-delivery: ignored
            record(w, fb_out, truth, reports)
    return ref, reports, rejected, w


def record(w: ModelWindow, out: Output, truth: Truth, reports: list) -> None:
    for report in out.reports:
        reports.append((report, Truth(dict(truth.events), dict(truth.feedback)), out.alerts))


CONFIG = window_settings(length=40.0, slide=5.0, lateness=2.0, domain_rows=10_000, min_feedback=20)
ALERTS = AlertSettings(ks_d=0.3)


@pytest.fixture(scope="module")
def run() -> tuple:
    return simulate(CONFIG)


def test_every_statistic_matches_brute_force_on_the_same_window(run: tuple) -> None:
    ref, reports, _, _ = run
    assert len(reports) > 40
    for report, truth, _ in reports:
        start, end = report.window_start.timestamp(), report.window_end.timestamp()
        assert end - start == CONFIG.window_seconds and end % CONFIG.slide_seconds == 0
        keys = truth.window(start, end)
        assert report.n == len(keys) > 0
        p = np.array([truth.events[k][1] for k in keys])
        labels = np.array([truth.events[k][2] for k in keys])

        # KS: the histogram D is below the exact D by at most the largest bin mass.
        exact = ks_2samp(ref.probabilities, p).statistic
        bins = CONFIG.ks_bins
        mass = max(
            np.bincount(np.minimum((ref.probabilities * bins).astype(int), bins - 1)).max()
            / len(ref.probabilities),
            np.bincount(np.minimum((p * bins).astype(int), bins - 1)).max() / len(p),
        )
        assert -1e-12 <= exact - report.ks_d <= mass + 1e-12

        # CBPE: expected confusion matrix of the calibrated probabilities, by brute force.
        cal = Squash().predict(p)
        tp, fp = cal[labels == 1].sum(), (1 - cal[labels == 1]).sum()
        fn, tn = cal[labels == 0].sum(), (1 - cal[labels == 0]).sum()
        assert report.estimated.accuracy == pytest.approx((tp + tn) / len(p), abs=1e-9)
        assert report.estimated.f1 == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-9)
        assert report.estimated.precision == pytest.approx(tp / (tp + fp), abs=1e-9)
        assert report.estimated.recall == pytest.approx(tp / (tp + fn), abs=1e-9)
        ref_predicted = ref.probabilities >= 0.5
        assert report.reference_f1 == pytest.approx(f1_score(ref.labels, ref_predicted))

        # Feedback: Brier (mean squared error against the feedback mean) and realized F1.
        with_fb = [k for k in keys if k in truth.feedback]
        assert report.feedback.n == len(with_fb)
        if with_fb:
            fb_p = np.array([truth.events[k][1] for k in with_fb])
            fb_mean = np.array([truth.feedback[k][1] for k in with_fb])
            fb_label = np.array([truth.events[k][2] for k in with_fb])
            assert report.feedback.brier == pytest.approx(
                mean_squared_error(fb_mean, fb_p), abs=1e-12
            )
            if np.isin(fb_mean, [0.0, 1.0]).all():
                assert report.feedback.brier == pytest.approx(brier_score_loss(fb_mean, fb_p))
            truth_y = (fb_mean >= 0.5).astype(int)
            assert report.feedback.accuracy == pytest.approx(accuracy_score(truth_y, fb_label))
            if truth_y.any() or fb_label.any():
                assert report.feedback.f1 == pytest.approx(f1_score(truth_y, fb_label))

        # Domain classifier: on every window row (domain_rows is above the window size).
        x = np.vstack(
            [truth.events[k][3] for k in sorted(keys, key=lambda k: (truth.events[k][0], k))]
        )
        if len(keys) >= 5:
            assert report.domain_auc == pytest.approx(domain_auc(ref.features, x).auc, abs=1e-9)

        # MMD: the same random Fourier map applied from scratch to the window's rows.
        mmd = ref.feature_mmd
        z, ref_z = mmd.features(x).astype(float), mmd.features(ref.features).astype(float)
        assert report.mmd == pytest.approx(np.sum((z.mean(0) - ref_z.mean(0)) ** 2), abs=1e-9)
        assert report.mmd_threshold == mmd.threshold(len(keys))
        assert report.mmd_drift == (report.mmd > report.mmd_threshold)


def test_the_mmd_sum_is_exactly_that_of_the_events_in_the_window(run: tuple) -> None:
    """Events leave the MMD a slide at a time, as sums (no event keeps its features): what is
    left is, bit for bit, the sum of the events in the window, after many slides with late
    events."""
    _, _, _, w = run
    w._map_entered()
    rows = decode_rows([e.features for e in w.events()], w.mmd.n_columns)
    fresh = w.reference.feature_mmd.empty().update(w.mmd.features(rows))
    assert w.mmd.to_state()["units"] == fresh.to_state()["units"]
    assert w.mmd.n == len(w.window) == sum(k for _, k in w._leaving.values()) > 100


def test_the_domain_sample_is_the_window_events_with_the_smallest_keys() -> None:
    """Kept per slide, the sample is still that of the whole window: its `domain_rows` events
    with the smallest `sample_key`, in event-time order; and the same after a restore."""
    config = window_settings(length=40.0, slide=5.0, lateness=2.0, domain_rows=25)
    _, reports, _, w = simulate(config, seed=3, n=800)
    assert len(reports) > 20
    w._map_entered()
    events = w.events()
    assert len(events) > 4 * config.domain_rows
    smallest = sorted(events, key=lambda e: sample_key(e.inference_id))[: config.domain_rows]
    expected = [e.features for e in sorted(smallest, key=lambda e: (e.time, e.inference_id))]
    assert w._window_sample() == expected
    restored = ModelWindow.from_state(w.to_state(), w.reference, config, ALERTS, 0.5, w.clock)
    restored._map_entered()
    assert restored._window_sample() == expected


def test_drift_shows_in_ks_and_domain_auc_and_alerts_once_when_crossing(run: tuple) -> None:
    _, reports, _, _ = run
    first, last = reports[5][0], reports[-1][0]
    assert first.ks_d < 0.2 and not first.feature_drift and not first.mmd_drift
    assert last.ks_d > 0.4 and last.feature_drift and last.domain_auc > 0.9
    assert last.mmd_drift and last.mmd > 10 * last.mmd_threshold
    ks_alerts = [a for *_, alerts in reports for a in alerts if a.metric == "ks_d"]
    assert len(ks_alerts) == 1  # on the crossing, not on every slide above the threshold
    assert ks_alerts[0].value > ALERTS.ks_d
    domain_alerts = [a for *_, alerts in reports for a in alerts if a.metric == "domain_auc"]
    assert len(domain_alerts) == 1


def test_duplicates_count_once_and_late_results_are_rejected_with_reason(run: tuple) -> None:
    _, _, rejected, _ = run
    assert len(rejected) >= 10
    assert all(r.startswith("late: event time") and "allowed lateness 2s" in r for r in rejected)


def test_cbpe_tracks_realized_f1_when_calibration_holds() -> None:
    rng = np.random.default_rng(3)
    ref = reference(rng)
    ref = Reference(ref.probabilities, ref.labels, ref.features)  # identity calibrator
    w = model_window(ref, window_settings(length=2000, slide=2000, lateness=0))
    for i in range(4000):
        p = float(rng.beta(2, 2))
        key = str(uuid.UUID(int=i + 1))
        w.add_result(Event(key, float(i), p, p, int(p >= 0.5), encode_row(np.zeros(4))))
        y = float(rng.uniform() < p)  # the truth is drawn from the calibrated probability
        w.add_labeled(labeled(key, float(i), p, int(p >= 0.5), [y]))
    out = w.add_result(Event("x", 10_000.0, 0.5, 0.5, 1, encode_row(np.zeros(4))))
    report = out.reports[0]
    assert report.n == 2000 and report.feedback.n == 2000
    # Stated tolerance: 0.03 (the sd of a realized F1 on 2000 events is about 0.01).
    assert abs(report.estimated.f1 - report.feedback.f1) < 0.03
    assert not report.contradiction


def test_contradiction_when_feedback_disagrees_with_cbpe() -> None:
    rng = np.random.default_rng(4)
    w = model_window(reference(rng), window_settings(length=100, slide=100, lateness=0))
    for i in range(60):
        key = str(uuid.UUID(int=i + 1))
        w.add_result(Event(key, float(i), 0.95, 0.95, 1, encode_row(np.zeros(4))))
        w.add_labeled(labeled(key, float(i), 0.95, 1, [0.0]))  # confident and always wrong
    report = w.add_result(Event("x", 500.0, 0.5, 0.5, 1, encode_row(np.zeros(4)))).reports[0]
    assert report.estimated.f1 > 0.9 and report.feedback.f1 == 0.0
    assert report.contradiction


def test_error_stream_change_raises_one_alert_with_a_stable_id() -> None:
    rng = np.random.default_rng(5)
    w = model_window(reference(rng), window_settings(length=1e6, slide=1e6, lateness=0))
    alerts, at = [], []
    for i in range(1500):
        key = str(uuid.UUID(int=i + 1))
        w.add_result(Event(key, float(i), 0.9, 0.9, 1, encode_row(np.zeros(4))))
        wrong = rng.uniform() < (0.05 if i < 1000 else 0.6)
        out = w.add_labeled(labeled(key, float(i), 0.9, 1, [0.0 if wrong else 1.0]))
        alerts += out.alerts
        at += [i] * len(out.alerts)
    assert [a.metric for a in alerts] == ["error_change"]
    assert 1000 <= at[0] <= 1150
    again = ModelWindow.from_state(w.to_state(), w.reference, w.config, AlertSettings(), 0.5)
    end = alerts[0].window_end
    assert again.policy._alert("error_change", 1.0, None, end, "x", "k").alert_id == (
        w.policy._alert("error_change", 0.5, None, end, "y", "k").alert_id
    )


def test_early_feedback_is_applied_when_its_result_arrives() -> None:
    rng = np.random.default_rng(6)
    w = model_window(reference(rng), window_settings(length=100, slide=100, lateness=0))
    w.add_result(Event(str(uuid.UUID(int=1)), 1.0, 0.8, 0.8, 1, encode_row(np.zeros(4))))
    key = str(uuid.UUID(int=2))
    w.add_labeled(labeled(key, 2.0, 0.3, 0, [1.0]))
    w.add_result(Event(key, 2.0, 0.3, 0.3, 0, encode_row(np.zeros(4))))
    report = w.add_result(Event("x", 300.0, 0.5, 0.5, 1, encode_row(np.zeros(4)))).reports[0]
    assert report.feedback.n == 1 and report.feedback.brier == pytest.approx(0.49)


def test_resumed_state_continues_exactly() -> None:
    config = window_settings(length=40.0, slide=5.0, lateness=2.0, domain_rows=50)
    rng = np.random.default_rng(7)
    ref = reference(rng)
    a = model_window(ref, config)
    stream = [
        Event(
            str(uuid.UUID(int=i + 1)), i * 0.3, p, p, int(p >= 0.5), encode_row(rng.normal(size=4))
        )
        for i, p in enumerate(rng.uniform(size=600))
    ]
    for e in stream[:300]:
        a.add_result(e)
    state = pickle.loads(pickle.dumps(a.to_state()))  # what Bytewax stores is plain data
    b = ModelWindow.from_state(state, ref, config, AlertSettings(), 0.5, a.clock)

    def rest(w: ModelWindow) -> list[dict]:
        reports = [r for e in stream[300:] for r in w.add_result(dataclasses.replace(e)).reports]
        return [r.model_dump(exclude={"emitted_at"}) for r in reports]

    assert rest(a) == rest(b) != []


def test_sparse_rows_round_trip() -> None:
    from scipy import sparse

    m = sparse.random(5, 30, density=0.2, format="csr", random_state=0, dtype=np.float32)
    rows = [encode_row(m[i : i + 1]) for i in range(5)]
    back = decode_rows(rows, 30)
    assert (back.toarray() == m.toarray()).all()


def test_module_doctest() -> None:
    assert doctest.testmod(driftline.monitoring.window).failed == 0


def test_mmd_alerts_once_by_the_default_cusum_rule_after_the_drift(run: tuple) -> None:
    _, reports, _, _ = run
    found = [(r, a) for r, _, alerts in reports for a in alerts if a.metric == "mmd"]
    assert len(found) == 1
    report, alert = found[0]
    assert report.mmd_drift and "CUSUM" in alert.message and alert.value == report.mmd
    # After the drift: `simulate` shifts the stream after event n / 2 = 750, at 1000 + 0.2 * 750 s.
    assert alert.window_end == report.window_end and alert.window_end.timestamp() > 1150.0


def test_years_without_results_pass_in_one_step_and_every_window_is_still_right() -> None:
    """A backfilled result from 2000, then today's: the empty windows in between are skipped
    at once (stepping through them, 5 s at a time, froze a monitor for hours), and every window
    with results is still emitted, once, with exactly its results. An alarm fails the test
    instead of letting it hang should the skipping break."""
    config = window_settings(length=40.0, slide=5.0, lateness=2.0, domain_rows=50)
    rng = np.random.default_rng(11)
    w = model_window(reference(rng), config)
    year = 365 * 86_400.0
    bursts = [946_684_800.0, 946_684_800.0 + 12.0, 946_684_800.0 + 300.0, 1_764_547_200.0]
    times = sorted(float(t + u) for t in bursts for u in rng.uniform(0, 30, size=20))
    times.append(times[-1] + 30 * year)  # closes the last windows (nothing of it is emitted)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("the window stepped through the gap"))
    signal.alarm(30)
    try:
        reports = [
            r
            for i, t in enumerate(times)
            for r in w.add_result(Event(f"{i}", t, 0.5, 0.5, 1, encode_row(np.ones(4)))).reports
        ]
    finally:
        signal.alarm(0)
    last = times[-1] - config.lateness_seconds  # the watermark
    slide, length = config.slide_seconds, config.window_seconds
    expected = {
        end: n
        for end in {(t // slide + k) * slide for t in times[:-1] for k in range(1, 9)}
        if end <= last and (n := sum(end - length <= t < end for t in times)) > 0
    }
    assert {r.window_end.timestamp(): r.n for r in reports} == expected
    assert len(reports) == len(expected) and len(expected) > 30
