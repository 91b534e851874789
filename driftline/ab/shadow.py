"""Shadow arms: which requests a shadow scores, and how it compares with the arm that answered.

A shadow arm scores requests next to the arm that answers them, and never answers. Its
inference is a request of its own: a fresh id, `shadow_id(answered id, arm)`, the same in every
process and on every replay, so a re-scored shadow is stored and counted once. A shadow with
`shadow_sample` < 1 scores the requests whose hash of (experiment, arm, inference id) falls
below the sample, so replays pick the same ones.

`ShadowComparison` compares each shadow result with the answered inference it shadows. Feedback is
given on the answered inference only; a feedback score f is how positive the user says the text
really is (`driftline.stats.feedback`), so it rewards any predicted label y by `reward(y, f)` =
1 - |y - f|, the shadow's label as much as the answered one. For a binary label that is f's
reward of the answered label when the two agree and 1 minus it when they do not. Per shadow arm:

- `scored`: shadow results; `paired`: those whose answered inference is known here;
- `agreement`: share of paired inferences where the shadow's label equals the answered label;
- `feedback_count`: feedback scores on paired inferences; `mean_reward` of the shadow's label
  and `answered_mean_reward` of the answered label over those same scores, and the difference.

Messages may come in any order (a shadow result before its answered one, feedback before
either): the answered id's ledger (`driftline.ab.ledger`) remembers both sides and passes each
contribution on once, when both sides of it are known.

Example
-------
>>> import uuid
>>> answered = uuid.UUID(int=1)
>>> comparison = ShadowComparison()
>>> comparison.on_scored("S", None)
>>> comparison.on_paired("S", shadow=0, answered=1, scores=[0.75], pair=True)
>>> (s,) = comparison.stats()
>>> s.paired, s.agreement, s.mean_reward, s.answered_mean_reward, s.reward_difference
(1, 0.0, 0.25, 0.75, -0.5)
>>> shadow_id(answered, "S") == shadow_id(answered, "S") != shadow_id(answered, "T")
True

"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from driftline.ab.assignment import unit_interval
from driftline.ab.experiment import Arm, Experiment
from driftline.stats.feedback import reward
from driftline.topics import ModelRef, ShadowStats

__all__ = ["ShadowComparison", "samples", "shadow_id"]

_NAMESPACE = uuid.UUID("5b1e0c6a-4d1f-4e8a-9c55-0d7a3f1e2b90")


def shadow_id(answered: uuid.UUID, arm: str) -> uuid.UUID:
    """The inference id of `arm`'s shadow of the inference `answered` (a UUID5 of the two)."""
    return uuid.uuid5(_NAMESPACE, f"{answered}/{arm}")


def samples(experiment: Experiment, arm: Arm, inference_id: uuid.UUID) -> bool:
    """Whether the shadow `arm` scores the request `inference_id` (always, at a sample of 1).

    >>> from driftline.ab import Arm, Experiment
    >>> half = Arm(name="S", model="m", alias="a", shadow=True, shadow_sample=0.5)
    >>> exp = Experiment(name="e", arms=(Arm(name="A", model="m", alias="b"), half))
    >>> sum(samples(exp, half, uuid.UUID(int=i)) for i in range(10_000))
    4904
    """
    if arm.shadow_sample >= 1.0:
        return True
    unit = unit_interval(f"{experiment.name}/shadow/{arm.name}", str(inference_id))
    return unit < arm.shadow_sample


@dataclass
class _Totals:
    model: ModelRef | None = None
    scored: int = 0
    paired: int = 0
    agreed: int = 0
    feedback_count: int = 0
    shadow_reward: float = 0.0
    answered_reward: float = 0.0

    def stats(self, arm: str) -> ShadowStats:
        n, fb = self.paired, self.feedback_count
        shadow = self.shadow_reward / fb if fb else None
        answered = self.answered_reward / fb if fb else None
        return ShadowStats(
            arm=arm,
            model=self.model,
            scored=self.scored,
            paired=n,
            agreement=self.agreed / n if n else None,
            feedback_count=fb,
            mean_reward=shadow,
            answered_mean_reward=answered,
            reward_difference=None if shadow is None or answered is None else shadow - answered,
        )


class ShadowComparison:
    """Per shadow arm: agreement with the answering arm, and reward on the same inferences.

    Sums only: the ledger of each answered id (`driftline.ab.ledger.IdLedger`) pairs shadow
    results with it and passes on what changed.
    """

    def __init__(self) -> None:
        self.arms: dict[str, _Totals] = {}

    def on_scored(self, arm: str, model: ModelRef | None) -> None:
        totals = self.arms.setdefault(arm, _Totals())
        totals.scored += 1
        totals.model = model

    def on_paired(
        self, arm: str, shadow: int, answered: int, scores: Sequence[float], pair: bool
    ) -> None:
        """A shadow's label meets the answered label (`pair`: for the first time), with
        feedback `scores` not compared before."""
        totals = self.arms.setdefault(arm, _Totals())
        if pair:
            totals.paired += 1
            totals.agreed += shadow == answered
        for score in scores:
            totals.feedback_count += 1
            totals.shadow_reward += reward(shadow, score)
            totals.answered_reward += reward(answered, score)

    def stats(self) -> list[ShadowStats]:
        return [totals.stats(arm) for arm, totals in self.arms.items()]

    def to_state(self) -> dict[str, Any]:
        """A copy as builtins (and frozen messages), for Bytewax snapshots."""
        return {"arms": {arm: dict(vars(totals)) for arm, totals in self.arms.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """From `to_state`, or a snapshot from before the ledgers (its pairs are dropped)."""
        comparison = cls()
        comparison.arms = {arm: _Totals(**values) for arm, values in state["arms"].items()}
        return comparison
