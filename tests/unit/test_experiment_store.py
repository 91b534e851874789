"""The durable experiment store, the default experiment, and the flow's refreshing cache."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from app.experiments import cmd_experiments, describe, parse_arm, parse_shadow
from driftline import settings
from driftline.ab import Arm, Experiment
from driftline.ab.default import default_experiment
from models.experiments import ExperimentCache, ExperimentStore

ONE = {"sentiment_logreg_tfidf": ({"champion"}, "1")}
FOUR = ONE | {
    "sentiment_logreg_minilm": ({"champion"}, "1"),
    "sentiment_xgboost_minilm": (set(), "2"),
    "sentiment_xgboost_tfidf": ({"champion"}, "1"),
}


def exp(name: str, *arms: str) -> Experiment:
    return Experiment(
        name=name, arms=tuple(Arm(name=a, model=a, alias="champion", weight=1) for a in arms)
    )


def test_experiments_survive_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "experiments.sqlite"
    ExperimentStore(path).put(exp("a", "x", "y"))
    ExperimentStore(path).put(exp("b", "z"))
    ExperimentStore(path).put(exp("a", "x"))  # replaces
    store = ExperimentStore(path)
    assert [(e.name, len(e.arms)) for e in store.list()] == [("a", 1), ("b", 1)]
    assert store.delete("b") and not store.delete("b")
    assert store.get("b") is None


def test_default_is_the_served_model_against_the_most_different_one(tmp_path: Path) -> None:
    s = settings.load(home=tmp_path)
    default, complete = default_experiment(s.models, s.ab, FOUR)
    assert complete
    assert [(a.model, a.alias, a.version, a.weight) for a in default.arms] == [
        ("sentiment_logreg_tfidf", "champion", None, 0.5),
        ("sentiment_xgboost_minilm", None, "2", 0.5),  # no alias: its latest version
    ]
    single, complete = default_experiment(s.models, s.ab, ONE)
    assert not complete and [a.model for a in single.arms] == ["sentiment_logreg_tfidf"]


def test_cache_rereads_the_store_and_grows_the_default(tmp_path: Path) -> None:
    s = settings.load(home=tmp_path, experiment_refresh_seconds=5.0)
    now, registry = [0.0], [ONE]
    store = ExperimentStore.of(s)
    cache = ExperimentCache(s, store, registry=lambda _: registry[0], clock=lambda: now[0])
    assert len(cache.get(None).arms) == 1 and store.get("default") is None  # not stored yet
    store.put(exp("new", "x"))
    registry[0] = FOUR
    assert cache.get("new") is None  # until the refresh interval passes
    now[0] = 5.0
    assert cache.get("new") == exp("new", "x")
    assert len(cache.get(None).arms) == 2
    assert store.get("default") == cache.get("default")  # stored once complete


def test_shadow_arms_are_stored_and_listed_as_the_cli_declares_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = settings.load(home=tmp_path)
    put = argparse.Namespace(
        action="put", name="e", mode="fixed", description="", arm=[parse_arm("A=m@champion")]
    )
    clash = vars(put) | {"shadow": [parse_shadow("A=m/2:0.5")]}
    assert cmd_experiments(s, argparse.Namespace(**clash)) == 2  # refused before any look-up
    assert "repeats arm names ['A']" in capsys.readouterr().err
    ExperimentStore.of(s).put(
        Experiment(name="e", arms=(Arm(**put.arm[0]), Arm(**parse_shadow("S=m/2:0.5"))))
    )
    stored = ExperimentStore.of(s).get("e")
    assert stored is not None
    assert [describe(a) for a in stored.arms] == ["A=m@champion:1", "S=m/2:shadow 0.5"]
