"""The four models, trained on a small lake sample into a real MLflow store, as the flows use
them; and an alias move reaching the running inference flow."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from app import cli
from driftline import settings
from driftline.settings import Settings
from models import data, registry, train
from models.fetch import FetchedVersions, FetchError
from models.serving import ModelCache
from tests.integration.conftest import Stack, wait_until

pytestmark = pytest.mark.integration
SAMPLE = 300  # the embedding models encode these 300 texts once, in a few seconds


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, list[train.TrainedModel]]:
    s = settings.load(home=Path(tmp_path_factory.mktemp("models")))
    return s, train.train(s, sample=SAMPLE)


@pytest.mark.slow
def test_each_model_loads_by_alias_through_the_flows_cache_and_scores_text(
    trained: tuple[Settings, list[train.TrainedModel]],
) -> None:
    s, models = trained
    assert sorted(m.name for m in models) == sorted(train.NAMES)
    cache, fetched = ModelCache(s), FetchedVersions(s)
    texts = ["i love this so much", "this is awful, i hate it"]
    for model in models:
        loaded = cache.get(model.name, s.models.default_alias)
        assert loaded.version == model.version
        p = loaded.predict_proba(texts)
        assert p.shape == (2,) and np.all((p >= 0) & (p <= 1))
        # The monitor's copy, fetched by a child process: the same model, and its reference.
        monitored = fetched.get(model.name, model.version)
        np.testing.assert_array_equal(monitored.model.predict_proba(texts), p)
        assert monitored.reference.features.shape[1] == loaded.features(texts).shape[1]


@pytest.mark.slow
def test_fetching_a_version_that_is_not_registered_says_so(
    trained: tuple[Settings, list[train.TrainedModel]],
) -> None:
    s, models = trained
    with pytest.raises(FetchError, match=f"fetching {models[0].name} version 99 failed: .+"):
        FetchedVersions(s).get(models[0].name, "99")


@pytest.mark.slow
def test_references_come_from_held_out_rows_and_match_the_registered_model(
    trained: tuple[Settings, list[train.TrainedModel]],
) -> None:
    s, models = trained
    lake = data.read_training(s, sample=SAMPLE)  # the same seeded sample training read
    fit, test = lake.part("train"), lake.part("test")
    cache, fetched = ModelCache(s), FetchedVersions(s)
    for model in models:
        ref = fetched.reference(model.name, model.version)
        assert not set(ref.row_ids) & set(fit["row_id"])
        assert list(ref.row_ids) == list(test["row_id"])
        assert set(ref.feature_row_ids) <= set(test["row_id"])
        np.testing.assert_array_equal(ref.labels, test["label"])
        served = cache.get_version(model.name, model.version).predict_proba(test["text"].tolist())
        np.testing.assert_allclose(ref.probabilities, served, atol=1e-4)
        grid = np.linspace(0, 1, 201)
        calibrated = ref.calibrator.predict(grid)
        assert np.all((calibrated >= 0) & (calibrated <= 1)) and np.all(np.diff(calibrated) >= 0)
        run = registry.client(s).get_run(model.run_id)
        assert run.data.tags["lake_snapshot_id"] == str(lake.snapshot_id)
        assert {i.dataset.name for i in run.inputs.dataset_inputs} == {
            f"sentiment_train@{lake.snapshot_id}/training",
            f"sentiment_train@{lake.snapshot_id}/testing",
        }


@pytest.mark.slow
def test_models_list_shows_every_version_with_its_metrics(
    trained: tuple[Settings, list[train.TrainedModel]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s, models = trained
    monkeypatch.setenv("DRIFTLINE_HOME", str(s.home))
    assert cli.main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "version", "aliases", "test_f1"]
    for model in models:
        row = next(line.split() for line in lines if line.startswith(model.name + " "))
        assert row[1:3] == [model.version, s.models.default_alias]
        assert float(row[3]) == pytest.approx(model.metrics["test_f1"], abs=1e-3)


def test_an_alias_move_reaches_the_running_inference_flow(
    live: Stack, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = live.settings
    for key, value in s.to_env().items():
        monkeypatch.setenv(key, value)  # so the CLI talks to the live stack's store
    name, alias = s.models.default_model, s.models.default_alias
    served = registry.alias_version(s, name, alias)
    assert served is not None
    new = train.train(s, sample=500, only=[name], make_champion=False)[0]
    assert registry.alias_version(s, name, alias) == served  # training alone moves nothing

    def served_version() -> str | None:
        # The default experiment splits traffic between two models: watch the served one.
        body = client.post("/inference", json={"data": "i love it", "subject": str(uuid.uuid4())})
        model = body.json().get("model") or {}
        return model.get("version") if model.get("name") == name else None

    try:
        assert cli.main(["models", "promote", name, new.version, alias]) == 0
        wait_until(lambda: served_version() == new.version, timeout=30)
    finally:
        registry.set_alias(s, name, served, alias)
    wait_until(lambda: served_version() == served, timeout=30)
