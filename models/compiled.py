"""Fitted TF-IDF pipelines scored without scikit-learn's per-call checks.

scikit-learn checks its input at every call of every step (parameters, finiteness, feature
names, whether the input is a dataframe of some library), and for one or two texts those checks
are most of the work: `Pipeline.predict_proba` of TF-IDF + logistic regression takes ~560 us for
one text, of which the arithmetic is ~70 us (`python -m bench.scoring`). The inference flow scores
micro-batches of one or two texts at 200 requests/s, so the checks were two thirds of its CPU.

`compile_pipeline` reads a fitted pipeline's public attributes once (`build_analyzer()`,
`vocabulary_`, `idf_`, `coef_`, the XGBoost booster) and returns the same computation without
the checks: the same numbers as scikit-learn's within floating-point rounding (tested to 1e-12).
A pipeline of any other shape gets None and is scored by scikit-learn as before.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Features = Callable[[Sequence[str]], Any]
"""Texts -> the pipeline's feature rows (a CSR matrix, as the vectorizer's own)."""


@dataclass(frozen=True)
class CompiledPipeline:
    features: Features
    predict_proba: Callable[[Sequence[str]], np.ndarray]
    """Texts -> P(y=1) for each."""


def compile_pipeline(estimator: Any) -> CompiledPipeline | None:
    """The pipeline `[TfidfVectorizer, binary LogisticRegression | XGBClassifier]` without
    scikit-learn's checks, or None for any other estimator (an embedding pipeline, a setting
    this module does not know).

    >>> from sklearn.preprocessing import StandardScaler
    >>> compile_pipeline(StandardScaler()) is None
    True
    """
    if type(estimator) is not _loaded("sklearn.pipeline", "Pipeline") or len(estimator) != 2:
        return None
    vectorizer, classifier = estimator[0], estimator[-1]
    if type(vectorizer) is not _loaded("sklearn.feature_extraction.text", "TfidfVectorizer"):
        return None
    features, scores = _tfidf(vectorizer), _classifier(classifier)
    if features is None or scores is None:
        return None
    return CompiledPipeline(features, lambda texts: scores(features(texts)))


def _tfidf(vectorizer: Any) -> Features | None:
    """`TfidfVectorizer.transform`: counts of the vocabulary's terms, optionally 1 + log of
    them, times the idf weights, each row divided by its L2 norm."""
    if vectorizer.norm not in ("l2", None) or np.dtype(vectorizer.dtype) != np.float64:
        return None
    from scipy.sparse import csr_matrix

    analyze = vectorizer.build_analyzer()
    vocabulary: dict[str, int] = vectorizer.vocabulary_
    idf = vectorizer.idf_ if vectorizer.use_idf else None
    binary, sublinear, l2 = vectorizer.binary, vectorizer.sublinear_tf, vectorizer.norm == "l2"
    width = len(vocabulary)

    def features(texts: Sequence[str]) -> Any:
        indices: list[int] = []
        counts: list[int] = []
        indptr = [0]
        for text in texts:
            row: dict[int, int] = {}
            for term in analyze(text):
                column = vocabulary.get(term)
                if column is not None:
                    row[column] = row.get(column, 0) + 1
            columns = sorted(row)
            indices += columns
            counts += [1 if binary else row[c] for c in columns]
            indptr.append(len(indices))
        columns_of = np.asarray(indices, dtype=np.int32)
        data = np.asarray(counts, dtype=np.float64)
        if sublinear:
            np.log(data, out=data)
            data += 1
        if idf is not None:
            data *= idf[columns_of]
        starts = np.asarray(indptr, dtype=np.int32)
        if l2 and len(data):
            lengths = np.diff(starts)
            squares = np.zeros(len(texts))
            filled = lengths > 0
            squares[filled] = np.add.reduceat(data * data, starts[:-1][filled])
            norms = np.sqrt(squares)
            data /= np.repeat(norms, lengths)
        return csr_matrix((data, columns_of, starts), shape=(len(texts), width))

    return features


def _classifier(classifier: Any) -> Callable[[Any], np.ndarray] | None:
    """P(y=1) from feature rows, for a binary logistic regression or XGBoost classifier."""
    if len(getattr(classifier, "classes_", ())) != 2:
        return None
    if type(classifier) is _loaded("sklearn.linear_model", "LogisticRegression"):
        from scipy.special import expit

        weights, bias = classifier.coef_.ravel().copy(), float(classifier.intercept_[0])
        return lambda rows: np.asarray(expit(rows @ weights + bias))
    if type(classifier) is not _loaded("xgboost.sklearn", "XGBClassifier"):
        return None
    booster = classifier.get_booster()
    if classifier.objective != "binary:logistic" or booster.attr("best_iteration") is not None:
        return None  # early stopping would make predict_proba use fewer trees
    missing = classifier.missing
    return lambda rows: np.asarray(booster.inplace_predict(rows, missing=missing))


def _loaded(module: str, name: str) -> Any:
    """A class of a module imported already, else None: whoever built an estimator of that
    class imported its module, so nothing is imported here just to compare types."""
    return getattr(sys.modules.get(module), name, None)
