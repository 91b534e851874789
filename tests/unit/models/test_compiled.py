"""`models.compiled` against scikit-learn's own `predict_proba` and `transform`, on pipelines
built like the registered ones (`models.train`): the same numbers within 1e-12 (the sums of
squares of the L2 norm may be added in another order)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from xgboost import XGBClassifier

from models.compiled import compile_pipeline
from models.features import tfidf
from models.serving import LoadedModel

TOLERANCE = 1e-12

WORDS = (
    "good",
    "bad",
    "great",
    "awful",
    "fine",
    "movie",
    "plot",
    "acting",
    "slow",
    "fun",
    "boring",
)


def corpus(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) for _ in range(n)]


TRAIN = corpus(400, seed=1)
LABELS = np.array([int("good" in t or "loved" in t) for t in TRAIN])
ODD = ["", "   ", "unseen words only", "GOOD Good good!!", "café naïve good", "bad " * 50]
TEXTS = corpus(200, seed=2) + ODD


def fitted(vectorizer: TfidfVectorizer, classifier: object) -> Pipeline:
    return Pipeline([("features", vectorizer), ("clf", classifier)]).fit(TRAIN, LABELS)


PIPELINES = {
    "logreg, bigrams": lambda: fitted(
        tfidf().set_params(ngram_range=(1, 2)),
        LogisticRegression(max_iter=2000, class_weight="balanced"),
    ),
    "xgboost": lambda: fitted(
        tfidf(), XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1, random_state=0)
    ),
    "no idf, binary, no norm": lambda: fitted(
        TfidfVectorizer(use_idf=False, binary=True, norm=None), LogisticRegression()
    ),
    "plain tf, l2": lambda: fitted(TfidfVectorizer(), LogisticRegression(C=0.1)),
}


@pytest.mark.parametrize("name", PIPELINES)
def test_scores_and_features_equal_scikit_learns(name: str) -> None:
    pipeline = PIPELINES[name]()
    compiled = compile_pipeline(pipeline)
    assert compiled is not None
    expected = pipeline.predict_proba(TEXTS)[:, 1]
    np.testing.assert_allclose(compiled.predict_proba(TEXTS), expected, rtol=0, atol=TOLERANCE)
    for one in TEXTS[:5] + ODD:  # the flow's usual micro-batch: one text
        got = compiled.predict_proba([one])
        np.testing.assert_allclose(got, pipeline.predict_proba([one])[:, 1], atol=TOLERANCE)
    rows, own = compiled.features(TEXTS), pipeline[:-1].transform(TEXTS)
    assert rows.shape == own.shape
    np.testing.assert_allclose(rows.toarray(), own.toarray(), rtol=0, atol=TOLERANCE)
    assert compiled.predict_proba([]).shape == (0,)


def test_other_pipelines_are_left_to_scikit_learn() -> None:
    three_classes = Pipeline([("f", TfidfVectorizer()), ("c", LogisticRegression())])
    three_classes.fit(TRAIN, LABELS + (np.arange(len(TRAIN)) % 3 == 0))
    l1 = fitted(TfidfVectorizer(norm="l1"), LogisticRegression())
    extra_step = Pipeline(
        [("f", TfidfVectorizer()), ("id", FunctionTransformer()), ("c", LogisticRegression())]
    ).fit(TRAIN, LABELS)
    for estimator in (three_classes, l1, extra_step, LogisticRegression(), object()):
        assert compile_pipeline(estimator) is None


def test_a_loaded_model_scores_through_the_compiled_pipeline() -> None:
    pipeline = PIPELINES["logreg, bigrams"]()
    model = LoadedModel("m", "1", pipeline)
    assert model.compiled is not None
    np.testing.assert_allclose(
        model.predict_proba(TEXTS), pipeline.predict_proba(TEXTS)[:, 1], atol=TOLERANCE
    )
    assert model.features(TEXTS).shape == (len(TEXTS), len(pipeline[0].vocabulary_))
