"""The benchmarks' model: TF-IDF + logistic regression on shuffled tweets, with its reference.

Rows `[0, train)` train it, rows `[train, train + reference)` (held out) are its reference,
as at training time; the rest were seen by neither.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from driftline.monitoring.reference import Calibrator, Reference, fit_calibrator
from driftline.stats.domain_classifier import Features
from models.datasets import sentiment_binary


@dataclass(frozen=True)
class TweetModel:
    texts: list[str]
    """All positive/negative tweets, shuffled by the seed."""
    labels: np.ndarray
    vectorizer: TfidfVectorizer
    model: LogisticRegression
    reference_x: Features
    reference_p: np.ndarray
    calibrator: Calibrator
    reference: Reference
    rest: slice
    """Rows neither trained on nor in the reference."""


def tweet_model(seed: int, train: int, reference: int) -> TweetModel:
    data = sentiment_binary().sample(frac=1.0, random_state=seed).reset_index(drop=True)
    texts, y = data["text"].tolist(), data["label"].to_numpy()
    fit, ref = slice(0, train), slice(train, train + reference)
    vectorizer = TfidfVectorizer().fit(texts[fit])
    model = LogisticRegression(max_iter=1000).fit(vectorizer.transform(texts[fit]), y[fit])
    ref_x = vectorizer.transform(texts[ref])
    ref_p = model.predict_proba(ref_x)[:, 1]
    calibrator = fit_calibrator(ref_p, y[ref])
    return TweetModel(
        texts,
        y,
        vectorizer,
        model,
        ref_x,
        ref_p,
        calibrator,
        Reference(ref_p, y[ref], ref_x, calibrator),
        slice(train + reference, None),
    )
