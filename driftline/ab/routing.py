"""Which arm a request goes to: sticky hashing, a Thompson bandit, or the caller's model list.

A request names an experiment (the default one when it names none) or lists candidate models
explicitly, as the reference API allows. In `fixed` mode a stable hash of (experiment, subject,
else inference id) picks the arm, so a subject always sees one model. In `bandit` mode a
Thompson sampler picks it; the sampler learns from joined feedback (`Labeled`): each new score
on a result is a `reward`. The sampler state is plain data, one per experiment, kept by the
caller (the inference flow's keyed state, so Bytewax recovery restores it).

An experiment's shadow arms (`driftline.ab.shadow`) score the request too, each as a request of
its own linked to the answered one (`Routed.shadow_of`); `route_with_shadows` gives all of them.

>>> import uuid
>>> from driftline.clock import utc_now
>>> from driftline.topics import InferenceRequest, ModelRef
>>> request = InferenceRequest(inference_id=uuid.uuid4(), created_at=utc_now(), data="hi",
...                            subject="user-1", models=[ModelRef(name="m", version="2")])
>>> route(None, request, experiments=lambda name: None).arm.version
'2'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from driftline.ab.assignment import assign_arm
from driftline.ab.experiment import Arm, Experiment
from driftline.ab.shadow import samples, shadow_id
from driftline.ab.thompson import ThompsonSampler
from driftline.stats.feedback import reward
from driftline.topics import InferenceRequest, Labeled, ModelRef

Experiments = Callable[[str | None], Experiment | None]
"""Experiment name (None: the default) -> the experiment, or None when unknown."""

EXPLICIT = ""
"""Routing key of requests that list their models instead of naming an experiment."""


@dataclass(frozen=True)
class Routed:
    """A request with the arm it goes to, or the reason it cannot be routed."""

    request: InferenceRequest
    arm: Arm | None = None
    experiment: str | None = None
    error: str | None = None
    shadow_of: UUID | None = None
    """A shadow arm's request: the id of the request it shadows (whose answer is returned)."""


def routing_key(request: InferenceRequest, default: str) -> str:
    """The experiment a request routes through; requests and bandit rewards are keyed by it."""
    return EXPLICIT if request.models else (request.experiment or default)


def explicit_experiment(models: Sequence[ModelRef]) -> Experiment:
    """The reference API's model list as an equal-weight experiment over pinned versions."""
    arms = {m.key: Arm(name=m.key, model=m.name, version=m.version, weight=1) for m in models}
    return Experiment(name="explicit", arms=tuple(arms.values()))


def sampler_for(experiment: Experiment, state: dict[str, Any] | None) -> ThompsonSampler:
    """The experiment's sampler, keeping learned posteriors of arms that still exist."""
    sampler = ThompsonSampler(a.name for a in experiment.answering)
    known = ThompsonSampler.from_state(state).posteriors if state else {}
    for arm, posterior in known.items():
        if arm in sampler.posteriors:
            sampler.posteriors[arm] = list(posterior)
    return sampler


def route(
    state: dict[str, Any] | None, request: InferenceRequest, experiments: Experiments
) -> Routed:
    """The arm for `request`; `state` is its experiment's bandit state (None when fresh)."""
    return route_with_shadows(state, request, experiments)[0]


def route_with_shadows(
    state: dict[str, Any] | None, request: InferenceRequest, experiments: Experiments
) -> list[Routed]:
    """`route`, then a request for each shadow arm of the experiment that samples it."""
    unit = request.subject or str(request.inference_id)
    if request.models:
        return [Routed(request, assign_arm(explicit_experiment(request.models), unit))]
    experiment = experiments(request.experiment)
    if experiment is None:
        return [Routed(request, error=f"unknown experiment {request.experiment!r}")]
    if experiment.mode == "bandit":
        arm = experiment.arm(sampler_for(experiment, state).choose(str(request.inference_id)))
    else:
        arm = assign_arm(experiment, unit)
    return [Routed(request, arm, experiment.name), *shadow_routes(experiment, request)]


def shadow_routes(experiment: Experiment, request: InferenceRequest) -> list[Routed]:
    """The shadow arms' requests for `request` (none for readiness probes): each with its own
    id, stable across replays, and linked to `request`.

    >>> import uuid
    >>> from driftline.clock import utc_now
    >>> exp = Experiment(name="e", arms=(Arm(name="A", model="m", alias="champion"),
    ...                                  Arm(name="S", model="n", version="2", shadow=True)))
    >>> request = InferenceRequest(inference_id=uuid.uuid4(), created_at=utc_now(), data="hi")
    >>> (shadow,) = shadow_routes(exp, request)
    >>> shadow.arm.name, shadow.shadow_of == request.inference_id, shadow.request.data
    ('S', True, 'hi')
    >>> shadow.request.inference_id == shadow_id(request.inference_id, "S")
    True
    """
    if request.probe:
        return []
    return [
        Routed(
            request.model_copy(update={"inference_id": shadow_id(request.inference_id, arm.name)}),
            arm,
            experiment.name,
            shadow_of=request.inference_id,
        )
        for arm in experiment.shadows
        if samples(experiment, arm, request.inference_id)
    ]


def learn(
    state: dict[str, Any] | None, labeled: Labeled, experiments: Experiments
) -> dict[str, Any] | None:
    """The bandit state after the newest feedback score of `labeled`."""
    if labeled.experiment is None:
        return state
    experiment = experiments(labeled.experiment)
    if experiment is None or labeled.arm not in {a.name for a in experiment.answering}:
        return state
    score = reward(labeled.label, labeled.feedback[-1])
    return sampler_for(experiment, state).update(labeled.arm, score).to_state()
