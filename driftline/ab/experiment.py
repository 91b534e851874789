"""Experiment definition: which registered models compete, and with what share of traffic.

An experiment is configuration, so it is an immutable, validated value that round-trips through
JSON unchanged (``model_dump(mode="json")`` / ``model_validate``). Each arm addresses a model in
the MLflow registry either by alias (which follows the alias when it moves) or by a pinned
version, never both, so that what an arm serves is never ambiguous.

Parameters
----------
Arm.name
    Arm label, unique within the experiment; it is what assignment and statistics report.
Arm.model
    Registered model name.
Arm.alias, Arm.version
    Exactly one of the two: a registry alias (``champion``) or a version (``"3"``).
Arm.weight
    Relative share of traffic in ``fixed`` mode, > 0 (1 when omitted); weights need not sum
    to 1. Ignored for shadow arms.
Arm.shadow
    A shadow arm never answers: it scores the requests the experiment routes (all of them, or
    the share ``shadow_sample`` of them, picked by a hash of the inference id) next to the arm
    that answers, and its results are compared with that arm's (`driftline.ab.shadow`).
    An experiment needs at least one arm that is not a shadow.
Arm.shadow_sample
    Share of requests a shadow arm scores, in [0, 1]; only shadow arms take it.
Experiment.mode
    ``fixed`` routes by hashed weights (`assign_arm`); ``bandit`` routes by Thompson sampling
    on feedback reward (`ThompsonSampler`), and the weights are then unused.
Experiment.rollout
    Optional `RolloutSpec`: ramp the ``challenger`` arm through ``steps`` (its share of the
    traffic it shares with the ``champion`` arm) while the sequential test says it is not worse
    by more than ``margin`` (`driftline.ab.rollout`). Fixed mode only. ``id`` names one run of
    the ramp: the gateway stamps a fresh one on every PUT, so a stored rollout starts over.

Example
-------
>>> from driftline.ab import Arm, Experiment
>>> exp = Experiment(
...     name="tfidf-vs-minilm",
...     arms=(
...         Arm(name="A", model="spam", alias="champion", weight=0.9),
...         Arm(name="B", model="spam", version="7", weight=0.1),
...     ),
... )
>>> exp.arm("B").version
'7'
>>> Experiment.model_validate(exp.model_dump(mode="json")) == exp
True
>>> try:
...     Arm(name="C", model="spam", alias="champion", version="7", weight=1.0)
... except ValueError as error:
...     print(error.errors()[0]["msg"])
Value error, arm 'C' must set exactly one of alias or version, got both
>>> shadowed = Experiment(name="e", arms=(*exp.arms, Arm(name="S", model="ham", version="2",
...                                                        shadow=True, shadow_sample=0.5)))
>>> [a.name for a in shadowed.answering], [a.name for a in shadowed.shadows]
(['A', 'B'], ['S'])

References
----------
MLflow model registry aliases: https://mlflow.org/docs/latest/model-registry.html

"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Arm", "Experiment", "RolloutSpec"]


class Arm(BaseModel):
    """One competing model: a registry address and its traffic weight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    model: str = Field(min_length=1)
    alias: str | None = Field(default=None, min_length=1)
    version: str | None = Field(default=None, min_length=1)
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    shadow: bool = False
    shadow_sample: float = Field(default=1.0, ge=0, le=1)

    @model_validator(mode="after")
    def _one_address(self) -> Self:
        if (self.alias is None) == (self.version is None):
            got = "neither" if self.alias is None else "both"
            raise ValueError(
                f"arm {self.name!r} must set exactly one of alias or version, got {got}"
            )
        if self.shadow_sample != 1.0 and not self.shadow:
            raise ValueError(f"arm {self.name!r} sets shadow_sample but is not a shadow arm")
        return self


class RolloutSpec(BaseModel):
    """A declared ramp of a challenger arm against a champion arm (`driftline.ab.rollout`).

    >>> RolloutSpec(challenger="B", champion="A").steps
    (0.05, 0.25, 0.5, 1.0)
    >>> try:
    ...     RolloutSpec(challenger="B", champion="A", steps=(0.5, 0.25))
    ... except ValueError as error:
    ...     print(error.errors()[0]["msg"])
    Value error, rollout steps must rise strictly within (0, 1] and end at 1, got [0.5, 0.25]
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    challenger: str = Field(min_length=1)
    champion: str = Field(min_length=1)
    steps: tuple[float, ...] = Field(default=(0.05, 0.25, 0.5, 1.0), min_length=1)
    margin: float = Field(default=0.02, gt=0, lt=1)
    min_feedback: int = Field(default=30, ge=1)
    id: str = ""

    @model_validator(mode="after")
    def _ramp(self) -> Self:
        steps = self.steps
        rising = all(a < b for a, b in pairwise(steps))
        if not (rising and steps[0] > 0 and steps[-1] == 1.0):
            raise ValueError(
                f"rollout steps must rise strictly within (0, 1] and end at 1, got {list(steps)}"
            )
        if self.challenger == self.champion:
            raise ValueError(f"rollout challenger and champion must differ, got {self.champion!r}")
        return self


class Experiment(BaseModel):
    """A named A/B test over one or more arms."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    arms: tuple[Arm, ...] = Field(min_length=1)
    mode: Literal["fixed", "bandit"] = "fixed"
    description: str = ""
    rollout: RolloutSpec | None = None

    @model_validator(mode="after")
    def _unique_arm_names(self) -> Self:
        repeated = sorted(name for name, n in Counter(a.name for a in self.arms).items() if n > 1)
        if repeated:
            raise ValueError(f"experiment {self.name!r} repeats arm names {repeated}")
        if not self.answering:
            raise ValueError(f"experiment {self.name!r} needs an arm that is not a shadow")
        if self.rollout is not None:
            names = {a.name for a in self.arms}
            declared = (self.rollout.champion, self.rollout.challenger)
            unknown = [n for n in declared if n not in names]
            if unknown:
                raise ValueError(f"experiment {self.name!r}: rollout names unknown arms {unknown}")
            if self.mode != "fixed":
                raise ValueError(f"experiment {self.name!r}: a rollout needs mode 'fixed'")
        return self

    @property
    def answering(self) -> tuple[Arm, ...]:
        """The arms that answer requests: assignment and the bandit choose among these."""
        return tuple(a for a in self.arms if not a.shadow)

    @property
    def shadows(self) -> tuple[Arm, ...]:
        """The shadow arms: they score next to the answering arm and never answer."""
        return tuple(a for a in self.arms if a.shadow)

    def arm(self, name: str) -> Arm:
        """The arm called ``name``; routing by bandit or by stored results yields names."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"experiment {self.name!r} has no arm {name!r}")
