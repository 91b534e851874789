"""A retraining request handled twice registers one version: real MLflow (sqlite) and lake files
in a temp folder, the logistic regression on a small sample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from driftline import settings
from driftline.ab import Arm, Experiment
from driftline.monitoring.retraining import request_id
from driftline.topics import ModelRef, RetrainRequest
from models import experiments, registry, retrain, train

NAME = "sentiment_logreg_tfidf"


def test_a_replayed_request_registers_once_and_shadows_the_served_model(tmp_path: Path) -> None:
    s = settings.load({}, home=tmp_path, retrain_sample=600)
    for model in train.train(s, sample=600, only=[NAME]):
        assert model.version == "1"
    model = ModelRef(name=NAME, version="1")
    end = datetime(2026, 11, 29, 10, tzinfo=UTC)
    request = RetrainRequest(
        request_id=request_id(model, "alert-1"),
        model=model,
        alert_id="alert-1",
        metric="mmd",
        window_end=end,
        requested_at=end,
    )
    assert not retrain.is_done(s, request.request_id)
    store = experiments.ExperimentStore.of(s)
    store.put(Experiment(name="e", arms=(Arm(name="A", model=NAME, alias="champion"),)))

    first = retrain.retrain(s, request)
    again = retrain.retrain(s, request)  # a replay: no second version

    assert first == again and first.version == "2" and first.experiments == ("e",)
    assert retrain.is_done(s, request.request_id)
    assert registry.alias_version(s, NAME, "challenger") == "2"
    tags = registry.client(s).get_run(first.run_id).data.tags
    assert tags[retrain.TAG_ALERT] == "alert-1" and tags[retrain.TAG_METRIC] == "mmd"
    assert tags[retrain.TAG_SNAPSHOT] == str(first.snapshot_id) == tags["lake_snapshot_id"]
    shadowing = store.get("e")
    assert shadowing is not None
    assert [(a.model, a.version, a.shadow) for a in shadowing.arms[1:]] == [(NAME, "2", True)]
    # The default experiment has one arm (one model registered): left to grow its second.
    assert store.get("default") is None
    # Another alert of the same episode is covered; one after the cool-down is not.
    later = {"request_id": "other", "window_end": end + timedelta(seconds=60)}
    assert retrain.covered_by(s, request.model_copy(update=later)) == request.request_id
    later["window_end"] = end + timedelta(seconds=s.retrain.cooldown_seconds + 1)
    assert retrain.covered_by(s, request.model_copy(update=later)) is None
