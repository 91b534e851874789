"""Inference flow: `inference.requests` -> route to an A/B arm -> score -> `inference.results`.

    python -m bytewax.run flows.inference:flow

Routing (`driftline.ab.routing`) picks each request's arm: by a sticky hash of its subject, by
a Thompson bandit, or among the models the request lists. The experiment's shadow arms score
the request too, in the same micro-batch, each as an inference of its own whose result carries
`shadow_of` (the answered id): the gateway waits only for the answered one. The bandit learns from
`inference.labeled` (the feedback flow's output, a second input here), and its state is kept
per experiment in a keyed stateful step, so Bytewax recovery restores it after a restart.
Experiments are re-read from the store every `DRIFTLINE_EXPERIMENT_REFRESH_SECONDS`, so an edit
needs no restart.

Scoring. Each micro-batch Bytewax hands over (up to `DRIFTLINE_FLOW_BATCH_SIZE` messages per
partition and poll) costs one `predict_proba` call per model in it. A valid request that cannot be
scored (unknown experiment, no model registered yet) still gets a result, with `error` set, so the
gateway can answer at once instead of timing out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from driftline.ab.routing import (
    EXPLICIT,
    Experiments,
    Routed,
    learn,
    route_with_shadows,
    routing_key,
)
from driftline.clock import utc_now
from driftline.imports import keep_out
from driftline.settings import Settings
from driftline.topics import LABELED, REQUESTS, RESULTS, InferenceResult, Labeled, ModelRef
from flows.wiring import Outgoing, Parsed, configured, consume, publish_all, settled
from models.experiments import ExperimentCache
from models.serving import LoadedModel, ModelCache

log = logging.getLogger(__name__)


class Models(Protocol):
    def get(self, name: str, alias: str) -> LoadedModel: ...
    def get_version(self, name: str, version: str) -> LoadedModel: ...


class Router:
    """Routing as a Bytewax `stateful_map` mapper; the state is one experiment's bandit.
    A request comes out routed to its answering arm, followed by its shadow arms' requests."""

    def __init__(self, experiments: Experiments) -> None:
        self._experiments = experiments

    def __call__(
        self, state: dict[str, Any] | None, item: Parsed
    ) -> tuple[dict[str, Any] | None, list[Routed]]:
        message = item.message
        if isinstance(message, Labeled):
            return learn(state, message, self._experiments), []
        return state, route_with_shadows(state, message, self._experiments)


class Scorer:
    """Scores a micro-batch of routed requests: one `predict_proba` per model in the batch."""

    def __init__(self, threshold: float, models: Models) -> None:
        self._threshold = threshold
        self._models = models

    def __call__(self, batch: Sequence[Routed]) -> list[Outgoing]:
        groups: dict[tuple[str, str | None, str | None], list[Routed]] = defaultdict(list)
        out = []
        for routed in batch:
            if routed.arm is None:
                out.append(self._result(routed, error=routed.error))
            else:
                groups[(routed.arm.model, routed.arm.alias, routed.arm.version)].append(routed)
        for (name, alias, version), items in groups.items():
            out += self._score(name, alias, version, items)
        return out

    def _score(
        self, name: str, alias: str | None, version: str | None, items: list[Routed]
    ) -> list[Outgoing]:
        try:
            if version is not None:
                model = self._models.get_version(name, version)
            else:
                model = self._models.get(name, alias or "")
            probabilities = model.predict_proba([r.request.data for r in items])
        except Exception as exc:  # the reason travels back to the caller in the result
            log.exception("scoring failed", extra={"model": name, "alias": alias})
            return [self._result(r, error=f"{type(exc).__name__}: {exc}") for r in items]
        ref = ModelRef(name=model.name, version=model.version)
        return [
            self._result(r, model=ref, prediction=float(p))
            for r, p in zip(items, probabilities, strict=True)
        ]

    def _result(
        self,
        routed: Routed,
        model: ModelRef | None = None,
        prediction: float | None = None,
        error: str | None = None,
    ) -> Outgoing:
        request, threshold = routed.request, self._threshold
        passed_on = {"inference_id", "created_at", "data", "subject", "log_to_lakehouse", "probe"}
        result = InferenceResult(
            **request.model_dump(include=passed_on),
            model=model,
            experiment=routed.experiment,
            arm=routed.arm.name if routed.arm is not None and routed.experiment else None,
            prediction=prediction,
            label=None if prediction is None else int(prediction >= threshold),
            threshold=threshold,
            scored_at=utc_now(),
            error=error,
            shadow_of=routed.shadow_of,
        )
        return Outgoing(RESULTS, result)


def _key(default: str) -> Callable[[Parsed], str]:
    """Requests by the experiment they route through; feedback rewards by theirs."""

    def key(item: Parsed) -> str:
        message = item.message
        if isinstance(message, Labeled):
            return message.experiment or EXPLICIT
        return routing_key(message, default)

    return key


def build(settings: Settings) -> Dataflow:
    flow = Dataflow("inference")
    parsed, dead = consume(flow, settings, [REQUESTS, LABELED], on_request_path=True)
    keyed = op.key_on("key", parsed, _key(settings.ab.default_experiment))
    routed = op.stateful_map("route", keyed, Router(ExperimentCache(settings).get))
    requests = op.flat_map("requests", routed, lambda kv: kv[1])
    scorer = Scorer(settings.models.threshold, ModelCache(settings))
    publish_all(op.flat_map_batch("score", requests, scorer), dead, settings)
    return flow


def flow() -> Dataflow:
    """The inference dataflow with the configured settings
    (`python -m bytewax.run flows.inference:flow`). The models' libraries import pandas and
    pyarrow only to look for them: kept out before any is imported (`driftline.imports`)."""
    keep_out("pandas", "pyarrow")
    return settled(build(configured()))
