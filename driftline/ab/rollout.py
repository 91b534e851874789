"""Rollout policy: ramp a challenger arm step by step while it is not worse than the champion.

A `Rollout` is the state machine of one declared ramp (`RolloutSpec`): the index of the current
step, a status (running, paused, completed, rolled_back, aborted) and how much feedback the
challenger had when the step began. It is pure: it reads `ABReport`, `Alert` and
`RolloutCommand` messages and returns `RolloutDecision` messages, stamped with the event time of
what caused them, so replaying the same messages yields the same decisions with the same ids.

- `on_report`: with the confidence sequence of challenger - champion reward from the report's
  sequential test (`driftline.ab.sequential`), the challenger is rolled back at once when the
  test shows it worse (upper bound below 0: the champion is better at the test's alpha). While
  running, it advances to the next step when it is not worse by more than ``margin`` (lower bound
  above -margin, non-inferiority) and has at least ``min_feedback`` new feedback scores since
  the step began, so it never advances on nothing; the last step (share 1) completes it.
- `on_alert`: an alert on the challenger's model version rolls it back at once (paused too).
- `on_command`: pause (running -> paused), resume (paused -> running), abort (-> aborted).
  A command that does not apply (resume while running, anything once finished) decides nothing.

Each decision's id is a digest of (experiment, rollout id, sequence number, kind, step).
`weighted` turns a decision's challenger share into the experiment's arm weights: the
challenger gets `share`, the champion `1 - share`; an arm at share 0 becomes a shadow (it is
still scored and compared, and never answers), which is how a rollback, an abort and a
completed ramp (the old champion) leave the experiment.

Example
-------
>>> from datetime import UTC, datetime
>>> from driftline.topics import ABReport, ArmStats, ModelRef, SequentialTest
>>> spec = RolloutSpec(challenger="B", champion="A", steps=(0.25, 1.0), margin=0.05,
...                    min_feedback=20, id="r1")
>>> rollout = Rollout("exp", spec)
>>> def report(feedback, lower, upper):
...     arms = [ArmStats(arm="A", traffic=100, feedback_count=feedback),
...             ArmStats(arm="B", traffic=30, feedback_count=feedback,
...                      model=ModelRef(name="m", version="2"))]
...     test = SequentialTest(arm_a="A", arm_b="B", ci_lower=lower, ci_upper=upper,
...                           decision="keep_running")
...     return ABReport(experiment="exp", emitted_at=datetime(2026, 11, 29, tzinfo=UTC),
...                     arms=arms, test=test)
>>> rollout.on_report(report(5, 0.01, 0.4)) is None      # too little feedback
True
>>> rollout.on_report(report(25, -0.2, 0.4)) is None     # could be worse by more than 0.05
True
>>> decision = rollout.on_report(report(25, -0.01, 0.4))
>>> decision.kind, decision.status, decision.challenger_share, decision.model.key
('complete', 'completed', 1.0, 'm/2')
>>> Rollout.from_state(rollout.to_state()).status
'completed'
"""

from __future__ import annotations

import hashlib
from typing import Any, Self

from driftline.ab.experiment import Arm, Experiment, RolloutSpec
from driftline.topics import (
    ABReport,
    Alert,
    ModelRef,
    RolloutCommand,
    RolloutDecision,
    RolloutKind,
    RolloutStatus,
)

__all__ = ["FINISHED", "Rollout", "decision_id", "weighted"]

FINISHED: frozenset[str] = frozenset({"completed", "rolled_back", "aborted"})
"""Statuses after which a rollout decides nothing more."""


def decision_id(experiment: str, rollout_id: str, seq: int, kind: str, step: int) -> str:
    """A digest that a replay re-derives, so the lake stores the decision once.

    >>> decision_id("exp", "r1", 0, "advance", 1)
    '590cb6e593730d3a6554b6cb'
    """
    key = "\x1f".join([experiment, rollout_id, str(seq), kind, str(step)]).encode()
    return hashlib.blake2b(key, digest_size=12).hexdigest()


def weighted(experiment: Experiment, share: float) -> Experiment:
    """The experiment with its rollout's challenger at `share` and its champion at `1 - share`;
    an arm at 0 becomes a shadow that scores every request. Applying it twice changes nothing.

    >>> exp = Experiment(name="e", arms=(Arm(name="A", model="m", alias="champion"),
    ...                                  Arm(name="B", model="m", version="2")),
    ...                  rollout=RolloutSpec(challenger="B", champion="A"))
    >>> [(a.name, a.weight, a.shadow) for a in weighted(exp, 0.25).arms]
    [('A', 0.75, False), ('B', 0.25, False)]
    >>> [(a.name, a.shadow) for a in weighted(exp, 0.0).arms]
    [('A', False), ('B', True)]
    """
    spec = experiment.rollout
    assert spec is not None, "only an experiment with a rollout has a challenger share"
    shares = {spec.challenger: share, spec.champion: 1.0 - share}

    def arm(arm: Arm) -> Arm:
        if arm.name not in shares:
            return arm
        weight = shares[arm.name]
        if weight <= 0:
            return arm.model_copy(update={"shadow": True, "weight": 1.0})
        return arm.model_copy(update={"shadow": False, "weight": weight})

    return experiment.model_copy(update={"arms": tuple(arm(a) for a in experiment.arms)})


class Rollout:
    """The ramp of one experiment's challenger: one `RolloutSpec`, driven by messages."""

    def __init__(self, experiment: str, spec: RolloutSpec, model: ModelRef | None = None) -> None:
        self.experiment, self.spec = experiment, spec
        self.step = 0
        self.status: RolloutStatus = "running"
        self.seq = 0
        self.baseline = 0
        """Challenger feedback scores when the current step began."""
        self.model = model
        """The challenger's model version: from its pinned arm, else from the reports."""
        self.feedback = 0
        self.bounds: tuple[float | None, float | None] = (None, None)

    @property
    def share(self) -> float:
        """The challenger's share now."""
        if self.status in ("rolled_back", "aborted"):
            return 0.0
        return self.spec.steps[self.step]

    def on_report(self, report: ABReport) -> RolloutDecision | None:
        """Advance, complete or roll back on a report's evidence; None when nothing changes."""
        if self.status in FINISHED:
            return None
        arms = {a.arm: a for a in report.arms}
        challenger = arms.get(self.spec.challenger)
        if challenger is None or self.spec.champion not in arms:
            return None
        self.model = challenger.model or self.model
        self.feedback = challenger.feedback_count
        lower, upper = self.bounds = self._interval(report)
        if upper is not None and upper < 0:
            return self._decide("rollback", report, "the sequential test shows it worse")
        if self.status != "running" or lower is None:
            return None
        if self.feedback - self.baseline < self.spec.min_feedback or lower <= -self.spec.margin:
            return None
        self.step += 1
        self.baseline = self.feedback
        last = self.step == len(self.spec.steps) - 1
        reason = f"not worse than the champion by more than {self.spec.margin:g}"
        return self._decide("complete" if last else "advance", report, reason)

    def on_alert(self, alert: Alert) -> RolloutDecision | None:
        """Roll back at once on an alert on the challenger's model version."""
        if self.status in FINISHED or self.model is None or alert.model != self.model:
            return None
        return self._decide("rollback", alert, f"alert on the challenger: {alert.metric}")

    def on_command(self, command: RolloutCommand) -> RolloutDecision | None:
        """Pause, resume or abort, when the command applies to the current status."""
        allowed = {"pause": ("running",), "resume": ("paused",), "abort": ("running", "paused")}
        if self.status not in allowed[command.action]:
            return None
        return self._decide(command.action, command, f"{command.action} by a person")

    def _interval(self, report: ABReport) -> tuple[float | None, float | None]:
        """Confidence sequence of challenger - champion, whichever order the test has them."""
        test = report.test
        if test is None:
            return None, None
        pair = (test.arm_a, test.arm_b)
        if pair == (self.spec.champion, self.spec.challenger):
            return test.ci_lower, test.ci_upper
        if pair == (self.spec.challenger, self.spec.champion):
            upper, lower = test.ci_lower, test.ci_upper  # the test has champion - challenger
            return (None if lower is None else -lower), (None if upper is None else -upper)
        return None, None

    def _decide(
        self, kind: RolloutKind, cause: ABReport | Alert | RolloutCommand, reason: str
    ) -> RolloutDecision:
        after: dict[str, RolloutStatus] = {
            "complete": "completed",
            "rollback": "rolled_back",
            "abort": "aborted",
            "pause": "paused",
        }
        self.status = after.get(kind, "running")
        at = cause.emitted_at if isinstance(cause, ABReport) else cause.created_at
        spec = self.spec
        decision = RolloutDecision(
            decision_id=decision_id(self.experiment, spec.id, self.seq, kind, self.step),
            experiment=self.experiment,
            rollout_id=spec.id,
            seq=self.seq,
            kind=kind,
            status=self.status,
            step=self.step,
            challenger=spec.challenger,
            champion=spec.champion,
            challenger_share=self.share,
            model=self.model,
            ci_lower=self.bounds[0],
            ci_upper=self.bounds[1],
            feedback_count=self.feedback,
            reason=reason,
            created_at=at,
        )
        self.seq += 1
        return decision

    def to_state(self) -> dict[str, Any]:
        """JSON-ready builtins, for Bytewax snapshots."""
        return {
            "experiment": self.experiment,
            "spec": self.spec.model_dump(mode="json"),
            "step": self.step,
            "status": self.status,
            "seq": self.seq,
            "baseline": self.baseline,
            "model": self.model.model_dump() if self.model else None,
            "feedback": self.feedback,
            "bounds": list(self.bounds),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        model = ModelRef(**state["model"]) if state["model"] else None
        rollout = cls(state["experiment"], RolloutSpec.model_validate(state["spec"]), model)
        rollout.step, rollout.status, rollout.seq = state["step"], state["status"], state["seq"]
        rollout.baseline, rollout.feedback = state["baseline"], state["feedback"]
        lower, upper = state["bounds"]
        rollout.bounds = (lower, upper)
        return rollout
