"""The retraining policy: which alerts ask for a retraining, the cool-down, stable ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from driftline.monitoring.retraining import RetrainPolicy, feedback_label, request_id
from driftline.settings import RetrainSettings
from driftline.topics import Alert, ModelRef, RetrainRequest, decode

MODEL = ModelRef(name="sentiment_logreg_tfidf", version="1")
T0 = datetime(2026, 11, 29, 10, tzinfo=UTC)


def alert(metric: str, seconds: float, model: ModelRef = MODEL) -> Alert:
    end = T0 + timedelta(seconds=seconds)
    return Alert(
        alert_id=f"{model.key}/{metric}/{seconds}",
        model=model,
        metric=metric,
        value=0.9,
        window_end=end,
        message="",
        created_at=end,
    )


def policy(**config: object) -> RetrainPolicy:
    return RetrainPolicy(RetrainSettings(**config), clock=lambda: T0.timestamp())  # type: ignore[arg-type]


@pytest.mark.parametrize("metric", ["ks_d", "mmd", "domain_auc", "brier"])
def test_drift_and_brier_alerts_request_a_retraining_by_default(metric: str) -> None:
    request = policy().on_alert(alert(metric, 0))
    assert request is not None and request.metric == metric and request.model == MODEL


@pytest.mark.parametrize("metric", ["cbpe_f1_drop", "contradiction", "error_change"])
def test_other_alerts_request_nothing(metric: str) -> None:
    assert policy().on_alert(alert(metric, 0)) is None


def test_the_metrics_are_configurable_and_empty_means_never() -> None:
    only_brier = policy(metrics="brier")
    assert only_brier.on_alert(alert("ks_d", 0)) is None
    assert only_brier.on_alert(alert("brier", 0)) is not None
    assert policy(metrics="").on_alert(alert("brier", 0)) is None


def test_one_drift_episode_makes_one_request_and_the_next_episode_another() -> None:
    p = policy(cooldown_seconds=600)
    episode = [alert("ks_d", 0), alert("mmd", 10), alert("domain_auc", 30), alert("ks_d", 599)]
    made = [p.on_alert(a) for a in episode]
    assert [r is not None for r in made] == [True, False, False, False]
    assert p.on_alert(alert("mmd", 600)) is not None  # the cool-down is over


def test_a_resumed_policy_keeps_its_cool_down() -> None:
    p = policy(cooldown_seconds=600)
    assert p.on_alert(alert("ks_d", 0)) is not None
    resumed = RetrainPolicy(RetrainSettings(cooldown_seconds=600), lambda: 0.0, p.to_state())
    assert resumed.on_alert(alert("mmd", 300)) is None
    assert resumed.on_alert(alert("mmd", 700)) is not None


def test_a_replayed_alert_makes_the_same_request_id() -> None:
    first = policy().on_alert(alert("ks_d", 0))
    again = policy().on_alert(alert("ks_d", 0))
    other = policy().on_alert(alert("ks_d", 0, ModelRef(name="m", version="2")))
    assert first is not None and again is not None and other is not None
    assert first.request_id == again.request_id == request_id(MODEL, first.alert_id)
    assert other.request_id != first.request_id
    assert decode(RetrainRequest, first.to_json()) == first


def test_feedback_labels_are_the_rounded_mean_with_enough_scores() -> None:
    cases = [[1.0, 0.0, 0.2], [0.5, 0.5, 0.5], [1.0, 0.8, 0.2, 0.0], [1.0, 1.0], []]
    assert [feedback_label(c, 3) for c in cases] == [0, 1, 1, None, None]
