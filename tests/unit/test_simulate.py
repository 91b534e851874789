"""The simulation plan: seeded, in event-time order, feedback and drift as the options say."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from scipy.stats import binomtest

from app.simulate import Options, plan

END = datetime(2026, 11, 1, tzinfo=UTC)
MONITOR = pd.DataFrame(
    {"text": [f"tweet {i}" for i in range(2000)], "label": [i % 3 == 0 for i in range(2000)]}
)
TRUTH = dict(zip(MONITOR["text"], MONITOR["label"].astype(int), strict=True))
SMS = [f"sms {i}" for i in range(50)]


def test_same_seed_same_plan_and_steps_in_event_time_order_within_the_span() -> None:
    options = Options(sample=0.05, seed=3)
    steps = plan(MONITOR, SMS, options, end=END)
    assert steps == plan(MONITOR, SMS, options, end=END)
    assert steps != plan(MONITOR, SMS, Options(sample=0.05, seed=4), end=END)
    assert len(steps) == 3 * 100
    times = [s.created_at for s in steps]
    assert times == sorted(times)
    assert END - timedelta(days=28) <= times[0] and times[-1] <= END


def test_feedback_counts_and_wrong_scores_stay_in_their_ranges() -> None:
    options = Options(passes=3, sample=0.5, feedback=(0.45, 0.55), flip=(0.10, 0.25), seed=1)
    steps = plan(MONITOR, SMS, options, end=END)
    n = len(steps)
    assert all(len(s.feedback) <= 3 for s in steps)
    scores = [(score, TRUTH[s.text]) for s in steps for score in s.feedback]
    wrong = sum(score != truth for score, truth in scores)
    # Over all passes the shares are averages of per-pass draws within the ranges; a binomial
    # test at 0.001 against each end allows for sampling noise at this size (3000 steps).
    assert binomtest(len(scores), 3 * n, 0.45, alternative="less").pvalue > 1e-3
    assert binomtest(len(scores), 3 * n, 0.55, alternative="greater").pvalue > 1e-3
    assert binomtest(wrong, len(scores), 0.10, alternative="less").pvalue > 1e-3
    assert binomtest(wrong, len(scores), 0.25, alternative="greater").pvalue > 1e-3
    assert {len(s.feedback) for s in steps} == {0, 1, 2, 3}


def test_drifted_steps_come_after_the_drift_point_from_the_other_domain() -> None:
    steps = plan(MONITOR, SMS, Options(sample=0.1, drift_at=0.6, seed=2), end=END)
    drift_point = END - timedelta(days=28) * 0.4
    drifted = [s for s in steps if s.drifted]
    assert drifted and all(s.created_at >= drift_point for s in drifted)
    assert all(s.created_at < drift_point for s in steps if not s.drifted)
    assert all(s.text in SMS and s.label is None and s.feedback == () for s in drifted)
    assert all(s.text in TRUTH and s.label == TRUTH[s.text] for s in steps if not s.drifted)


def test_subjects_come_from_the_pool() -> None:
    steps = plan(MONITOR, SMS, Options(sample=0.2, subjects=7), end=END)
    assert {s.subject for s in steps} == {f"user-{i}" for i in range(7)}


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"feedback": (0.6, 0.4)}, "feedback range"),
        ({"flip": (0.1, 1.5)}, "flip range"),
        ({"sample": 0.0}, "0 < sample"),
        ({"drift_at": 1.5}, "share of the time span"),
        ({"drift_source": "tv"}, "unknown drift source"),
    ],
)
def test_invalid_options_say_why(changes: dict, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        Options(**changes)


def test_drift_without_texts_is_refused() -> None:
    with pytest.raises(ValueError, match="no drift texts"):
        plan(MONITOR, [], Options(drift_at=0.5), end=END)
