import numpy as np
import pytest
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, precision_score

from driftline.stats import FeedbackMetrics


def accumulate(p: np.ndarray, feedback: np.ndarray, threshold: float = 0.5) -> FeedbackMetrics:
    metrics = FeedbackMetrics()
    labels = (p >= threshold).astype(int)
    for row in zip(p.tolist(), labels.tolist(), feedback.tolist(), strict=True):
        metrics.update(*row)
    return metrics


def test_brier_matches_sklearn_on_binary_feedback() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=3000)
    y = (rng.random(3000) < p).astype(int)
    # Exact apart from float summation order: 1e-12.
    assert accumulate(p, y.astype(float)).value().brier == pytest.approx(
        brier_score_loss(y, p), abs=1e-12
    )


def test_brier_matches_numpy_mean_on_fractional_feedback() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(size=3000)
    # Means of 1 to 4 binary scores per inference.
    k = rng.integers(1, 5, 3000)
    feedback = rng.binomial(k, p) / k
    assert accumulate(p, feedback).value().brier == pytest.approx(
        np.mean((p - feedback) ** 2), abs=1e-12
    )


def test_realized_rates_match_sklearn_with_feedback_thresholded_at_half() -> None:
    rng = np.random.default_rng(2)
    p, feedback = rng.uniform(size=3000), rng.choice([0.0, 1 / 3, 0.5, 2 / 3, 1.0], 3000)
    y_true, y_pred = (feedback >= 0.5).astype(int), (p >= 0.6).astype(int)
    realized = accumulate(p, feedback, threshold=0.6).value().realized
    # Integer counts on both sides: equal to float precision.
    assert realized.n == 3000
    assert realized.accuracy == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert realized.precision == pytest.approx(precision_score(y_true, y_pred), abs=1e-12)
    assert realized.f1 == pytest.approx(f1_score(y_true, y_pred), abs=1e-12)


def test_replacing_a_feedback_mean_equals_accumulating_the_new_mean() -> None:
    rng = np.random.default_rng(3)
    p, feedback = rng.uniform(size=500), rng.uniform(size=500)
    metrics = accumulate(p, feedback)
    new_feedback = feedback.copy()
    new_feedback[::7] = 1.0 - feedback[::7]
    for i in range(0, 500, 7):
        label = int(p[i] >= 0.5)
        metrics.remove(p[i], label, feedback[i]).update(p[i], label, new_feedback[i])
    assert metrics.to_state() == accumulate(p, new_feedback).to_state()


def test_window_without_feedback_has_no_brier_or_rates() -> None:
    summary = FeedbackMetrics().update(0.8, 1, 1.0).remove(0.8, 1, 1.0).value()
    assert summary.brier is None
    assert (summary.realized.n, summary.realized.accuracy, summary.realized.f1) == (0, None, None)


def test_restored_state_gives_the_same_value() -> None:
    metrics = accumulate(np.array([0.2, 0.9, 0.6]), np.array([0.0, 0.5, 1.0]))
    assert FeedbackMetrics.from_state(metrics.to_state()).value() == metrics.value()


def test_rejects_invalid_items_and_unknown_removals() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FeedbackMetrics().update(0.5, 1, 1.5)
    with pytest.raises(ValueError, match="not 0 or 1"):
        FeedbackMetrics().update(0.5, -1, 0.5)
    with pytest.raises(ValueError, match="no FP"):
        FeedbackMetrics().update(0.9, 1, 1.0).remove(0.9, 1, 0.0)
