"""Inference flow: `inference.requests` -> route to an A/B arm -> score -> `inference.results`.

    python -m bytewax.run flows.inference:flow

Routing. A request names an experiment (the default one when it names none) or lists candidate
models explicitly, as the reference API allows. In `fixed` mode a stable hash of (experiment,
subject, else inference id) picks the arm, so a subject always sees one model. In `bandit` mode a
Thompson sampler picks it; the sampler learns from `inference.labeled` (the feedback flow's
output, a second input here): each new feedback score f on a result with label y is a reward
1 - |y - f|. The sampler state is kept per experiment in a keyed stateful step, so Bytewax
recovery restores it after a restart. Experiments are re-read from the store every
`DRIFTLINE_EXPERIMENT_REFRESH_SECONDS`, so an edit needs no restart.

Scoring. Each micro-batch Bytewax hands over (up to `DRIFTLINE_FLOW_BATCH_SIZE` messages per
partition and poll) costs one `predict_proba` call per model in it. A valid request that cannot be
scored (unknown experiment, no model registered yet) still gets a result, with `error` set, so the
gateway can answer at once instead of timing out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import bytewax.operators as op
from bytewax.dataflow import Dataflow

from driftline import logs, settings
from driftline.ab import Arm, Experiment, ThompsonSampler, assign_arm
from driftline.ab.store import ExperimentCache
from driftline.settings import Settings
from driftline.topics import (
    LABELED,
    REQUESTS,
    RESULTS,
    InferenceRequest,
    InferenceResult,
    Labeled,
    ModelRef,
    utc_now,
)
from flows.wiring import Outgoing, Parsed, parse, publish, read, to_deadletter
from models.serving import LoadedModel, ModelCache

log = logging.getLogger(__name__)

EXPLICIT = ""
"""Routing key of requests that list their models instead of naming an experiment."""


class Models(Protocol):
    def get(self, name: str, alias: str) -> LoadedModel: ...
    def get_version(self, name: str, version: str) -> LoadedModel: ...


class Experiments(Protocol):
    def get(self, name: str | None) -> Experiment | None: ...


@dataclass(frozen=True)
class Routed:
    """A request with the arm it goes to, or the reason it cannot be routed."""

    request: InferenceRequest
    arm: Arm | None = None
    experiment: str | None = None
    error: str | None = None


def routing_key(request: InferenceRequest, default: str) -> str:
    return EXPLICIT if request.models else (request.experiment or default)


def explicit_experiment(models: Sequence[ModelRef]) -> Experiment:
    """The reference API's model list as an equal-weight experiment over pinned versions."""
    arms = {
        f"{m.name}/{m.version}": Arm(
            name=f"{m.name}/{m.version}", model=m.name, version=m.version, weight=1
        )
        for m in models
    }
    return Experiment(name="explicit", arms=tuple(arms.values()))


def reward(labeled: Labeled) -> float:
    """Reward of the newest feedback score: 1 when it agrees with the predicted label."""
    return 1.0 - abs(labeled.label - labeled.feedback[-1])


def sampler_for(experiment: Experiment, state: dict[str, Any] | None) -> ThompsonSampler:
    """The experiment's sampler, keeping learned posteriors of arms that still exist."""
    sampler = ThompsonSampler(a.name for a in experiment.arms)
    known = ThompsonSampler.from_state(state).posteriors if state else {}
    for arm, posterior in known.items():
        if arm in sampler.posteriors:
            sampler.posteriors[arm] = list(posterior)
    return sampler


class Router:
    """Routing as a Bytewax `stateful_map` mapper; the state is one experiment's bandit."""

    def __init__(self, experiments: Experiments) -> None:
        self._experiments = experiments

    def __call__(
        self, state: dict[str, Any] | None, item: Parsed
    ) -> tuple[dict[str, Any] | None, Routed | None]:
        message = item.message
        if isinstance(message, Labeled):
            return self._learn(state, message), None
        return state, self.route(state, message)

    def route(self, state: dict[str, Any] | None, request: InferenceRequest) -> Routed:
        unit = request.subject or str(request.inference_id)
        if request.models:
            return Routed(request, assign_arm(explicit_experiment(request.models), unit))
        experiment = self._experiments.get(request.experiment)
        if experiment is None:
            return Routed(request, error=f"unknown experiment {request.experiment!r}")
        if experiment.mode == "bandit":
            arm = experiment.arm(sampler_for(experiment, state).choose(str(request.inference_id)))
        else:
            arm = assign_arm(experiment, unit)
        return Routed(request, arm, experiment.name)

    def _learn(self, state: dict[str, Any] | None, labeled: Labeled) -> dict[str, Any] | None:
        if labeled.experiment is None:
            return state
        experiment = self._experiments.get(labeled.experiment)
        if experiment is None or labeled.arm not in {a.name for a in experiment.arms}:
            return state
        return sampler_for(experiment, state).update(labeled.arm, reward(labeled)).to_state()


class Scorer:
    """Scores a micro-batch of routed requests: one `predict_proba` per model in the batch."""

    def __init__(self, settings: Settings, models: Models) -> None:
        self._settings = settings
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
        request, threshold = routed.request, self._settings.threshold
        result = InferenceResult(
            inference_id=request.inference_id,
            created_at=request.created_at,
            data=request.data,
            subject=request.subject,
            log_to_lakehouse=request.log_to_lakehouse,
            probe=request.probe,
            model=model,
            experiment=routed.experiment,
            arm=routed.arm.name if routed.arm is not None and routed.experiment else None,
            prediction=prediction,
            label=None if prediction is None else int(prediction >= threshold),
            threshold=threshold,
            scored_at=utc_now(),
            error=error,
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
    topics = [REQUESTS, LABELED]
    parsed, dead = parse("parse", read("in", flow, settings, topics), "inference", settings, topics)
    keyed = op.key_on("key", parsed, _key(settings.default_experiment))
    routed = op.stateful_map("route", keyed, Router(ExperimentCache(settings)))
    requests = op.filter_map("requests", routed, lambda kv: kv[1])
    results = op.flat_map_batch("score", requests, Scorer(settings, ModelCache(settings)))
    publish("out", op.merge("all", results, op.map("dead", dead, to_deadletter)), settings)
    return flow


logs.configure()
flow = build(settings.load())
