"""Per-experiment, per-arm A/B statistics, summed from the changes the id ledgers pass on.

Per arm: traffic and its share, feedback count and mean score, mean `reward` and the Beta
posterior of it that Thompson sampling draws from (`ThompsonSampler.posterior`), and, over
inferences with feedback, realized accuracy (predicted label vs `truth` of the mean feedback)
and the Brier score (prediction - mean feedback)^2. Between the first two arms that get
traffic, an mSPRT (`MixtureSPRT`) on the per-score `reward` gives an always-valid p-value, a
confidence sequence and a decision that can be read after every event.

Everything here is a sum, so the state is small whatever the traffic: what must be known per
inference id (to count re-delivered messages once, to replace an inference's earlier feedback
when more comes, to pair shadow results) lives in `driftline.ab.ledger`, whose `Change`s are
added up by `apply`. Shadow arms' results never count as traffic, feedback or evidence for the
test: the report lists them under `shadows` (`ShadowComparison`).

Example
-------
>>> import uuid
>>> from driftline.ab.ledger import IdLedger
>>> from driftline.clock import utc_now
>>> from driftline.topics import InferenceResult
>>> def result(arm):
...     return InferenceResult(inference_id=uuid.uuid4(), created_at=utc_now(), data="x",
...                            experiment="exp", arm=arm, prediction=0.9, label=1,
...                            scored_at=utc_now())
>>> stats, ledger = ExperimentStats("exp"), IdLedger(horizon=3600.0)
>>> for arm in "AAB":
...     _ = stats.apply_all(ledger.on_result(result(arm)))
>>> [(a.arm, a.traffic, round(a.share, 2)) for a in stats.report().arms]
[('A', 2, 0.67), ('B', 1, 0.33)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

from driftline.ab.ledger import Change, Scores, ShadowPaired, ShadowScored, Traffic
from driftline.ab.sequential import MixtureSPRT
from driftline.ab.shadow import ShadowComparison
from driftline.ab.thompson import ThompsonSampler
from driftline.stats.feedback import reward, truth
from driftline.topics import ABReport, ArmStats, ModelRef, SequentialTest

__all__ = ["ExperimentStats"]


@dataclass
class _Arm:
    model: ModelRef | None = None
    traffic: int = 0
    feedback_count: int = 0
    feedback_sum: float = 0.0
    labeled: int = 0
    """Inferences with at least one feedback score."""
    correct: float = 0.0
    brier: float = 0.0
    reward_sum: float = 0.0
    """Sum of `reward` over every feedback score: the bandit's evidence."""

    def stats(self, name: str, total: int) -> ArmStats:
        return ArmStats(
            arm=name,
            model=self.model,
            traffic=self.traffic,
            share=self.traffic / total if total else None,
            feedback_count=self.feedback_count,
            mean_feedback=self.feedback_sum / self.feedback_count if self.feedback_count else None,
            accuracy=self.correct / self.labeled if self.labeled else None,
            brier=self.brier / self.labeled if self.labeled else None,
            mean_reward=self.reward_sum / self.feedback_count if self.feedback_count else None,
            posterior=ThompsonSampler.posterior(self.reward_sum, self.feedback_count),
        )


class ExperimentStats:
    """Running statistics of one experiment; `changed` says whether a new report is due."""

    def __init__(self, experiment: str, alpha: float = 0.05):
        self.experiment, self.alpha = experiment, alpha
        self.arms: dict[str, _Arm] = {}
        self.shadow = ShadowComparison()
        self.test: MixtureSPRT | None = None
        self.latest = datetime.min.replace(tzinfo=UTC)
        self.updates = 0
        self.changed = False

    def apply(self, change: Change) -> Self:
        """Add what one message changed, as its id's ledger found it."""
        if isinstance(change, Traffic):
            arm = self._arm(change.arm)
            arm.traffic += 1
            arm.model = change.model
        elif isinstance(change, Scores):
            self._on_scores(change)
        elif isinstance(change, ShadowScored):
            self.shadow.on_scored(change.arm, change.model)
        else:
            shadow, answered, scores = change.shadow_label, change.answered_label, change.scores
            self.shadow.on_paired(change.arm, shadow, answered, scores, change.paired)
        if not isinstance(change, ShadowPaired):
            self.latest = max(self.latest, change.at)
        self.updates += 1
        self.changed = True
        return self

    def apply_all(self, changes: Iterable[Change]) -> Self:
        for change in changes:
            self.apply(change)
        return self

    def _on_scores(self, change: Scores) -> None:
        arm = self._arm(change.arm)
        if change.before:  # replace the inference's earlier contribution
            self._score(arm, change, change.before, sign=-1.0)
        else:
            arm.labeled += 1
        self._score(arm, change, change.after, sign=1.0)
        for score in change.after[len(change.before) :]:
            gained = reward(change.label, score)
            arm.feedback_count += 1
            arm.feedback_sum += score
            arm.reward_sum += gained
            if self.test is not None and change.arm in (self.test.arm_a, self.test.arm_b):
                self.test.update(change.arm, gained)

    @staticmethod
    def _score(arm: _Arm, change: Scores, scores: tuple[float, ...], sign: float) -> None:
        mean = sum(scores) / len(scores)
        arm.correct += sign * float(change.label == truth(mean))
        arm.brier += sign * (change.prediction - mean) ** 2

    def _arm(self, name: str) -> _Arm:
        if name not in self.arms:
            self.arms[name] = _Arm()
            if len(self.arms) == 2:
                first, second = self.arms
                self.test = MixtureSPRT(arm_a=first, arm_b=second, alpha=self.alpha)
        return self.arms[name]

    def report(self) -> ABReport:
        """The current report, named by the newest event time it covers and how many changes it
        adds up, so a replay after a crash re-emits the same key and the lake stores it once."""
        self.changed = False
        total = sum(a.traffic for a in self.arms.values())
        test = None
        if self.test is not None:
            test = SequentialTest.model_validate(self.test.result(), from_attributes=True)
        return ABReport(
            experiment=self.experiment,
            emitted_at=self.latest,
            updates=self.updates,
            arms=[arm.stats(name, total) for name, arm in self.arms.items()],
            test=test,
            shadows=self.shadow.stats(),
        )

    def to_state(self) -> dict[str, Any]:
        """A copy as builtins (and frozen messages), for Bytewax snapshots."""
        return {
            "params": (self.experiment, self.alpha),
            "arms": {name: dict(vars(arm)) for name, arm in self.arms.items()},
            "shadow": self.shadow.to_state(),
            "test": self.test.to_state() if self.test is not None else None,
            "latest": self.latest,
            "updates": self.updates,
            "changed": self.changed,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """From `to_state`, or from a snapshot taken before the id ledgers: its sums are kept
        and the ids it remembered dropped (more feedback on those inferences then counts as
        new for one time-to-live), as are the old params' horizon and any pairs of shadows."""
        experiment, *_, alpha = state["params"]
        stats = cls(experiment, alpha)
        stats.arms = {name: _Arm(**values) for name, values in state["arms"].items()}
        if "shadow" in state:
            stats.shadow = ShadowComparison.from_state(state["shadow"])
        stats.test = MixtureSPRT.from_state(state["test"]) if state["test"] else None
        stats.latest, stats.changed = state["latest"], state["changed"]
        stats.updates = state.get("updates", 0)  # a snapshot from before the count: from 0
        return stats
