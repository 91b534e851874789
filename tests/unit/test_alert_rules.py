"""Alert rules across windows (`driftline.monitoring.rules`) and their use in `AlertPolicy`."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy.stats import norm

from driftline.monitoring.alerts import AlertPolicy
from driftline.monitoring.rules import Cusum, Persistence, domain_z, p_z
from driftline.settings import AlertSettings, MonitorSettings
from driftline.stats.mmd import RandomFourierMMD
from driftline.topics import ModelRef

MODEL = ModelRef(name="m", version="1")


def z_stream(seed: int, n: int = 2000) -> list[float | None]:
    """Null z scores, a shift of 1.5 sd in the middle third, and some missing windows."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n) + np.where((np.arange(n) > n // 3) & (np.arange(n) < 2 * n // 3), 1.5, 0)
    return [None if rng.uniform() < 0.05 else float(v) for v in z]


def cusum_by_loop(z: list[float | None], drift: float, h: float) -> list[int]:
    """Page's CUSUM written out plainly: alarms where S first exceeds h since it was last 0."""
    s, armed, out = 0.0, True, []
    for i, v in enumerate(z):
        if v is None:
            continue
        s = s + v - drift
        if s < 0:
            s = 0.0
        if s == 0.0:
            armed = True
        if s > h and armed:
            out.append(i)
            armed = False
    return out


def persistence_by_loop(z: list[float | None], k: int, alpha: float) -> list[int]:
    level, run, out = norm.ppf(1 - alpha), 0, []
    values = [(i, v) for i, v in enumerate(z) if v is not None]
    for i, v in values:
        run = run + 1 if v > level else 0
        if run == k:  # exactly the k-th in a row: later ones in the same run do not alarm
            out.append(i)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("drift", "h"), [(0.5, 5.0), (1.0, 12.0)])
def test_cusum_alarms_where_a_plain_loop_does(seed: int, drift: float, h: float) -> None:
    z = z_stream(seed)
    rule = Cusum(drift, h)
    assert [i for i, v in enumerate(z) if rule.update(v)] == cusum_by_loop(z, drift, h)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("k", "alpha"), [(1, 0.05), (3, 0.01)])
def test_persistence_alarms_on_the_kth_significant_window_in_a_row(
    seed: int, k: int, alpha: float
) -> None:
    z = z_stream(seed)
    rule = Persistence(k, alpha)
    assert [i for i, v in enumerate(z) if rule.update(v)] == persistence_by_loop(z, k, alpha)


@pytest.mark.parametrize("make", [lambda s: Cusum(1.0, 6.0, s), lambda s: Persistence(2, 0.05, s)])
def test_a_rule_resumed_from_its_state_alarms_as_if_never_stopped(make: object) -> None:
    z = z_stream(5)
    whole = make(None)  # type: ignore[operator]
    expected = [whole.update(v) for v in z]
    first = make(None)  # type: ignore[operator]
    got = [first.update(v) for v in z[:700]]
    resumed = make(dict(first.to_state()))  # type: ignore[operator]
    got += [resumed.update(v) for v in z[700:]]
    assert got == expected and any(expected)


def test_null_z_scores_match_scipy() -> None:
    # Tolerance 1e-9 against Phi^-1(1 - p) (1 - p rounds off below p ~ 1e-6); capped at 8.
    for p in [1e-6, 0.001, 0.01, 0.05, 0.5, 0.9, 0.999]:
        assert p_z(p) == pytest.approx(norm.ppf(1 - p), abs=1e-9)
    assert p_z(1e-300) == 8.0 and p_z(1.0) == -8.0
    # The domain AUC: the report's threshold is the 95% quantile of N(0.5, (2n + 1) / (6 n^2)).
    for n, auc in [(50, 0.6), (500, 0.53), (500, 0.47)]:
        sd = math.sqrt((2 * n + 1) / (6 * n * n))
        threshold = 0.5 + norm.ppf(0.95) * sd
        assert domain_z(auc, threshold) == pytest.approx((auc - 0.5) / sd, abs=1e-9)


def test_mmd_p_value_agrees_with_its_null_level_and_is_uniform_under_the_null() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(1000, 3))
    mmd = RandomFourierMMD(reference, dim=64, permutations=400, seed=1)
    p_values, agree = [], 0
    for _ in range(300):
        window = mmd.empty().update(mmd.features(rng.normal(size=(100, 3))))  # a grid size
        p = window.p_value()
        assert p is not None and 1 / 401 <= p <= 1.0
        p_values.append(p)
        agree += (p <= 0.05) == window.drifted()
    # The level and the p-value come from the same 400 splits: they agree but for ties at the
    # quantile itself (at most one split's worth).
    assert agree >= 297
    # Null windows: about 5% below 0.05 (binomial sd 1.3% at 300 windows; bound 4 sd).
    assert abs(np.mean(np.array(p_values) <= 0.05) - 0.05) < 0.052
    shifted = mmd.empty().update(mmd.features(rng.normal(0.5, 1.0, size=(100, 3))))
    assert shifted.p_value() == pytest.approx(1 / 401)


def policy(rule: str, state: dict | None = None) -> AlertPolicy:
    return AlertPolicy(
        MODEL,
        AlertSettings(rule=rule, cusum_drift=1.0, cusum_threshold=6.0),  # type: ignore[arg-type]
        MonitorSettings(),
        reference_f1=0.8,
        clock=lambda: 0.0,
        state=state,
    )


def feed(p: AlertPolicy, p_values: list[float], start: int = 0) -> list:
    alerts = []
    for i, pv in enumerate(p_values, start):
        alerts += p.on_rules(
            window_end=60.0 * i,
            ks_d=0.05,
            ks_p_value=pv,
            mmd=0.001,
            mmd_p_value=pv,
            auc=None,
            auc_threshold=None,
        )
    return alerts


def test_cusum_policy_alerts_once_per_metric_with_ids_stable_across_a_restart() -> None:
    p_values = [0.5] * 5 + [0.001] * 6 + [0.5] * 5
    whole = feed(policy("cusum"), p_values)
    assert [a.metric for a in whole] == ["ks_d", "mmd"]
    assert whole[0].window_end == datetime.fromtimestamp(60.0 * 7, UTC)  # 3rd window at z 3.09
    assert "CUSUM" in whole[0].message and whole[0].threshold is None
    first = policy("cusum")
    alerts = feed(first, p_values[:7])
    alerts += feed(policy("cusum", first.to_state()), p_values[7:], start=7)
    assert [a.alert_id for a in alerts] == [a.alert_id for a in whole]


def test_fixed_rule_keeps_the_fixed_levels_and_a_changed_rule_starts_afresh() -> None:
    assert feed(policy("fixed"), [1e-9] * 10) == []  # fixed: no rule, the levels decide
    fixed = policy("fixed")
    assert [
        c.metric
        for c in fixed.checks(
            ks_d=0.3, auc=None, feature_drift=None, cbpe_f1=0.8, brier=None, contradiction=False
        )
        if c.crossed
    ] == ["ks_d"]
    cusum = policy("cusum")
    feed(cusum, [0.001] * 2)
    assert policy("persistence", cusum.to_state()).rules["ks_d"].to_state() == {
        "run": 0,
        "firing": False,
    }
