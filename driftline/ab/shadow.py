"""Shadow arms: which requests a shadow scores, and how it compares with the arm that answered.

A shadow arm scores requests next to the arm that answers them, and never answers. Its
inference is a request of its own: a fresh id, `shadow_id(answered id, arm)`, the same in every
process and on every replay, so a re-scored shadow is stored and counted once. A shadow with
`shadow_sample` < 1 scores the requests whose hash of (experiment, arm, inference id) falls
below the sample, so replays pick the same ones.

`ShadowComparison` pairs each shadow result with the answered inference it shadows. Feedback is
given on the answered inference only; a feedback score f is how positive the user says the text
really is (`driftline.stats.feedback`), so it rewards any predicted label y by `reward(y, f)` =
1 - |y - f|, the shadow's label as much as the answered one. For a binary label that is f's
reward of the answered label when the two agree and 1 minus it when they do not. Per shadow arm:

- `scored`: shadow results; `paired`: those whose answered inference is known here;
- `agreement`: share of paired inferences where the shadow's label equals the answered label;
- `feedback_count`: feedback scores on paired inferences; `mean_reward` of the shadow's label
  and `answered_mean_reward` of the answered label over those same scores, and the difference.

Messages may come in any order (a shadow result before its answered one, feedback before
either): each contribution is added once, when both sides of it are known. Shadow results are
remembered by answered id for `horizon` seconds of event time, like `ExperimentStats.seen`.

Example
-------
>>> import uuid
>>> answered = uuid.UUID(int=1)
>>> comparison = ShadowComparison(horizon=3600.0)
>>> comparison.on_shadow(str(answered), "S", None, label=0, at=0.0, answer=None)
>>> comparison.on_answer(str(answered), label=1, scores=[0.75], new_from=None)
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

    The caller (`ExperimentStats`) knows each answered inference's label and feedback scores;
    it passes them in as an `answer`, (label, scores so far), whenever they change.
    """

    def __init__(self, horizon: float) -> None:
        self.horizon = horizon
        self.arms: dict[str, _Totals] = {}
        self.pairs: dict[str, tuple[dict[str, int], float]] = {}
        """answered inference id -> ({shadow arm: its label}, event time). Entries are replaced,
        never changed, so a snapshot is a shallow copy."""
        self.latest = float("-inf")

    def on_shadow(
        self,
        answered: str,
        arm: str,
        model: ModelRef | None,
        label: int,
        at: float,
        answer: tuple[int, Sequence[float]] | None,
    ) -> None:
        """A shadow result of `answered`; `answer` is its (label, scores) when known here."""
        entry = self.pairs.get(answered)
        if entry is None:
            entry = self.pairs[answered] = ({}, at)
            self._prune(at)
        if arm in entry[0]:
            return  # re-delivered
        self.pairs[answered] = ({**entry[0], arm: label}, entry[1])
        totals = self.arms.setdefault(arm, _Totals())
        totals.scored += 1
        totals.model = model
        if answer is not None:
            self._add(totals, label, answer[0], answer[1], pair=True)

    def on_answer(
        self, answered: str, label: int, scores: Sequence[float], new_from: int | None
    ) -> None:
        """The answered inference's label and all its scores so far; `new_from`: how many of
        `scores` an earlier call already passed (None: the answer was not known before)."""
        entry = self.pairs.get(answered)
        if entry is None:
            return
        new = scores if new_from is None else scores[new_from:]
        for arm, shadow_label in entry[0].items():
            self._add(self.arms[arm], shadow_label, label, new, pair=new_from is None)

    @staticmethod
    def _add(
        totals: _Totals, shadow: int, answered: int, scores: Sequence[float], pair: bool
    ) -> None:
        if pair:
            totals.paired += 1
            totals.agreed += shadow == answered
        for score in scores:
            totals.feedback_count += 1
            totals.shadow_reward += reward(shadow, score)
            totals.answered_reward += reward(answered, score)

    def _prune(self, at: float) -> None:
        self.latest = max(self.latest, at)
        if len(self.pairs) % 1024 == 0:  # amortised, as `ExperimentStats` prunes its ids
            cutoff = self.latest - self.horizon
            self.pairs = {k: v for k, v in self.pairs.items() if v[1] >= cutoff}

    def stats(self) -> list[ShadowStats]:
        return [totals.stats(arm) for arm, totals in self.arms.items()]

    def to_state(self) -> dict[str, Any]:
        """A copy as builtins (and frozen messages), for Bytewax snapshots."""
        return {
            "horizon": self.horizon,
            "arms": {arm: dict(vars(totals)) for arm, totals in self.arms.items()},
            "pairs": dict(self.pairs),
            "latest": self.latest,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        comparison = cls(state["horizon"])
        comparison.arms = {arm: _Totals(**values) for arm, values in state["arms"].items()}
        comparison.pairs = {k: (dict(v[0]), v[1]) for k, v in state["pairs"].items()}
        comparison.latest = state["latest"]
        return comparison
