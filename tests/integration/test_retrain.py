"""Retraining on drift through a running stack of its own: feedback-labelled traffic, then
out-of-domain texts -> a drift alert -> `retrain.requests` -> the `retrain` unit trains on the
lake at a snapshot plus the feedback -> a registered challenger whose MLflow run names the alert
and the snapshot -> a shadow arm in the default experiment that scores traffic."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer

import lakehouse
from broker.clients import producer_config
from driftline.clock import utc_now
from driftline.settings import Settings
from driftline.tables import SENTIMENT_TRAIN
from driftline.topics import ALERTS, RESULTS, Alert, InferenceResult, decode
from models import registry, retrain
from models.datasets import sentiment_binary, sms_texts
from tests.integration.conftest import WITH_KEY, Stack, make_settings, trained_stack, wait_until
from tests.integration.test_monitor import send
from tests.integration.test_spine import read_topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MIN_FEEDBACK = 2


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own: the session's has retraining off (`retrain_metrics=""`)."""
    s = make_settings(
        tmp_path_factory.mktemp("retrain"),
        retrain_metrics="ks_d,mmd,domain_auc,brier",
        retrain_sample=1500,
        retrain_min_feedback=MIN_FEEDBACK,
    )
    with trained_stack(s) as running:
        yield running


def retrained_runs(s: Settings) -> list[tuple[str, str, dict[str, str]]]:
    """(model name, version, run tags) of every version a retraining registered."""
    client = registry.client(s)
    found = []
    for model in client.search_registered_models():
        for mv in client.search_model_versions(f"name = '{model.name}'"):
            tags = client.get_run(mv.run_id).data.tags
            if retrain.TAG_REQUEST in tags:
                found.append((model.name, str(mv.version), tags))
    return found


def test_a_drift_alert_registers_a_challenger_with_lineage_that_shadows_traffic(
    stack: Stack,
) -> None:
    s = stack.settings
    http = httpx.Client(base_url=stack.url, timeout=30, headers=WITH_KEY)
    # Feedback-labelled in-domain traffic first: each answered inference gets its true label
    # MIN_FEEDBACK times, so the retraining has rows to add.
    tweets = sentiment_binary().sample(1000, random_state=3)
    for text, label in tweets[["text", "label"]].head(30).itertuples(index=False):
        answer = http.post("/inference", json={"data": text})
        assert answer.status_code == 200, answer.text
        for _ in range(MIN_FEEDBACK):
            sent = {"inference_id": answer.json()["inference_id"], "feedback": float(label)}
            assert http.patch("/inference", json=sent).status_code == 202

    producer = Producer(producer_config(s))
    send(s, producer, tweets["text"].iloc[30:630].tolist(), seconds=10)
    switched = utc_now()
    send(s, producer, sms_texts()["text"].sample(900, random_state=3).tolist(), seconds=20)

    def alerts() -> dict[str, Alert]:
        found = [decode(Alert, v) for v in read_topic(s, ALERTS.name(s.kafka))]
        return {a.alert_id: a for a in found if a.window_end > switched}

    def challenger() -> tuple[str, str, dict[str, str]] | None:
        mine = alerts()
        for name, version, tags in retrained_runs(s):
            if tags[retrain.TAG_ALERT] in mine and tags.get(retrain.TAG_DONE) == "true":
                return name, version, tags
        return None

    name, version, tags = wait_until(challenger, timeout=300, every=2.0)
    alert = alerts()[tags[retrain.TAG_ALERT]]
    assert alert.model.name == name and tags[retrain.TAG_METRIC] == alert.metric
    assert alert.metric in s.retrain.metric_set
    assert int(version) > int(alert.model.version)
    assert registry.alias_version(s, name, s.retrain.alias) == version
    # The run names a snapshot of the lake that holds the data it read, and the feedback rows.
    snapshot = int(tags[retrain.TAG_SNAPSHOT])
    assert int(tags[retrain.TAG_FEEDBACK_ROWS]) > 0
    con = lakehouse.connect(s.lake, read_only=True)
    try:
        at = f"FROM {SENTIMENT_TRAIN.name} AT (VERSION => {snapshot})"
        assert con.execute(f"SELECT count(*) {at}").fetchone()[0] > 1500  # type: ignore[index]
    finally:
        con.close()

    # The default experiment serves the model, so it now shadows it with the new version.
    arms: list[dict[str, Any]] = http.get("/experiments/default").json()["arms"]
    shadow = next(a for a in arms if a["shadow"] and a["model"] == name)
    assert shadow["version"] == version

    def shadow_scored() -> list[InferenceResult] | None:
        http.post("/inference", json={"data": "what a lovely day"})
        results = [decode(InferenceResult, v) for v in read_topic(s, RESULTS.name(s.kafka))]
        return [
            r
            for r in results
            if r.shadow_of is not None and r.model is not None
            if (r.model.name, r.model.version) == (name, version)
        ] or None

    assert wait_until(shadow_scored, timeout=120, every=2.0)
    http.close()
