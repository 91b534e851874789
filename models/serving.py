"""Models as the flows use them: loaded once per process, scored in micro-batches.

`ModelCache` resolves `name@alias` to a version at most every `refresh_seconds`, so moving an
alias (`driftline models promote`) reaches running flows without a restart, while the model
itself is loaded only once per version. It keeps the `DRIFTLINE_MODEL_CACHE_SIZE` most recently
used versions, so a long-running flow does not hold every version an alias ever pointed to.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.settings import Settings
from models import registry
from models.compiled import CompiledPipeline, compile_pipeline

log = logging.getLogger(__name__)


class ModelNotFound(LookupError):
    """No registered version answers to the requested name and alias."""


@dataclass(frozen=True)
class LoadedModel:
    """A registered version, scored through `models.compiled` when it is a TF-IDF pipeline
    it knows (the same numbers without scikit-learn's per-call checks)."""

    name: str
    version: str
    estimator: Any
    compiled: CompiledPipeline | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", compile_pipeline(self.estimator))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """P(y=1) for each text, in one call."""
        if self.compiled is not None:
            return self.compiled.predict_proba(texts)
        return np.asarray(self.estimator.predict_proba(list(texts)))[:, 1]

    def features(self, texts: Sequence[str]) -> Any:
        """The model's own features of each text (TF-IDF rows or embeddings), for monitoring.

        Compare them with the reference's (`models.fetch.Version.reference.features`).
        """
        if self.compiled is not None:
            return self.compiled.features(texts)
        return self.estimator[:-1].transform(list(texts))


def with_threads(estimator: Any, threads: int) -> Any:
    """The estimator with every `n_jobs` it has set to `threads`. A model trained with two
    threads (XGBoost's OpenMP) would otherwise take both cores of a small machine for each
    micro-batch, and its idle threads spin between calls, while six flows share those cores.

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> pipeline = make_pipeline(StandardScaler(), LogisticRegression(n_jobs=4))
    >>> with_threads(pipeline, 1)[-1].n_jobs
    1
    """
    if hasattr(estimator, "get_params") and hasattr(estimator, "set_params"):
        jobs = {key: threads for key in estimator.get_params(deep=True) if key.endswith("n_jobs")}
        if jobs:
            estimator.set_params(**jobs)
    return estimator


class ModelCache:
    def __init__(
        self,
        settings: Settings,
        refresh_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        loader: Callable[[str, str], Any] | None = None,
    ) -> None:
        self._settings = settings
        self._load = loader or (lambda name, version: _fetched(settings, name, version))
        self._refresh = (
            settings.models.refresh_seconds if refresh_seconds is None else refresh_seconds
        )
        self._clock = clock
        self._aliases: dict[tuple[str, str], tuple[str, float]] = {}
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()

    def version_of(self, name: str, alias: str) -> str:
        now = self._clock()
        cached = self._aliases.get((name, alias))
        if cached is not None and now - cached[1] < self._refresh:
            return cached[0]
        version = registry.alias_version(self._settings, name, alias)
        if version is None:
            raise ModelNotFound(f"no registered model {name!r} with alias {alias!r}")
        if cached is not None and cached[0] != version:
            log.info("alias moved", extra={"model": name, "alias": alias, "version": version})
        self._aliases[(name, alias)] = (version, now)
        return version

    def get(self, name: str, alias: str) -> LoadedModel:
        """The model behind `name@alias`, loading it on first use of each version."""
        return self.get_version(name, self.version_of(name, alias))

    def get_version(self, name: str, version: str) -> LoadedModel:
        key = (name, version)
        if key in self._models:
            self._models.move_to_end(key)
        else:
            started = time.perf_counter()
            self._models[key] = LoadedModel(name, version, self._load(name, version))
            while len(self._models) > self._settings.models.cache_size:
                (old_name, old_version), _ = self._models.popitem(last=False)
                log.info("model unloaded", extra={"model": old_name, "version": old_version})
            log.info(
                "model loaded",
                extra={
                    "model": name,
                    "version": version,
                    "seconds": round(time.perf_counter() - started, 2),
                },
            )
        return self._models[key]


def _fetched(settings: Settings, name: str, version: str) -> Any:
    """A version's estimator, its files copied by a child process, so that MLflow stays out of
    the flows that serve models (`models.fetch`, which builds on this module)."""
    from models.fetch import fetched_model

    return fetched_model(settings, name, version)
