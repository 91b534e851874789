"""The rollout state machine: advances on enough non-inferior evidence only, rolls back at once
on an alert or a worse challenger, obeys pause/resume/abort, and replays to the same ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from driftline.ab import Arm, Experiment, RolloutSpec
from driftline.ab.rollout import Rollout, weighted
from driftline.topics import (
    ABReport,
    Alert,
    ArmStats,
    ModelRef,
    RolloutCommand,
    RolloutDecision,
    SequentialTest,
)

T0 = datetime(2026, 11, 29, 12, tzinfo=UTC)
CHALLENGER = ModelRef(name="m", version="2")
SPEC = RolloutSpec(
    challenger="B", champion="A", steps=(0.05, 0.25, 0.5, 1.0), margin=0.02, min_feedback=10
)


def report(
    feedback: int, lower: float, upper: float, at: int = 0, order: tuple[str, str] = ("A", "B")
) -> ABReport:
    """A report where the challenger B has `feedback` scores and challenger - champion lies in
    [lower, upper] (stated in the test's own arm order)."""
    arms = [
        ArmStats(arm="A", traffic=100, feedback_count=feedback),
        ArmStats(arm="B", traffic=10, feedback_count=feedback, model=CHALLENGER),
    ]
    if order == ("B", "A"):
        lower, upper = -upper, -lower
    test = SequentialTest(
        arm_a=order[0], arm_b=order[1], ci_lower=lower, ci_upper=upper, decision="keep_running"
    )
    return ABReport(experiment="exp", emitted_at=T0 + timedelta(seconds=at), arms=arms, test=test)


def alert(model: ModelRef = CHALLENGER) -> Alert:
    return Alert(
        alert_id="a1",
        model=model,
        metric="ks_d",
        value=0.4,
        window_end=T0,
        message="drift",
        created_at=T0,
    )


def command(action: str) -> RolloutCommand:
    return RolloutCommand(command_id=uuid.uuid4(), experiment="exp", action=action, created_at=T0)  # type: ignore[arg-type]


def ramp(rollout: Rollout, start: int = 0) -> list[RolloutDecision]:
    """Feed good evidence, 10 more feedback scores each time, until nothing more happens."""
    decisions = []
    for i in range(start, start + 10):
        decision = rollout.on_report(report(10 * (i + 1), -0.01, 0.3, at=i))
        if decision is not None:
            decisions.append(decision)
    return decisions


def test_a_non_inferior_challenger_advances_through_every_step_and_completes() -> None:
    rollout = Rollout("exp", SPEC)
    decisions = ramp(rollout)
    assert [(d.kind, d.challenger_share) for d in decisions] == [
        ("advance", 0.25),
        ("advance", 0.5),
        ("complete", 1.0),
    ]
    assert rollout.status == "completed" and decisions[-1].model == CHALLENGER
    assert len({d.decision_id for d in decisions}) == 3
    assert rollout.on_report(report(1000, 0.1, 0.3)) is None  # finished: decides nothing


def test_no_advance_without_enough_new_feedback_in_the_step() -> None:
    rollout = Rollout("exp", SPEC)
    assert rollout.on_report(report(9, 0.2, 0.3)) is None
    assert rollout.on_report(report(10, 0.2, 0.3)).kind == "advance"  # type: ignore[union-attr]
    # The next step needs 10 more scores than the step began with, not 10 in all.
    assert rollout.on_report(report(19, 0.2, 0.3)) is None
    assert rollout.on_report(report(20, 0.2, 0.3)).step == 2  # type: ignore[union-attr]


def test_no_advance_while_the_challenger_may_be_worse_by_more_than_the_margin() -> None:
    rollout = Rollout("exp", SPEC)
    assert rollout.on_report(report(100, -0.02, 0.3)) is None  # the bound must be above -margin
    assert rollout.on_report(report(100, -0.019, 0.3)) is not None


def test_the_tests_arm_order_does_not_matter() -> None:
    rollout = Rollout("exp", SPEC)
    assert rollout.on_report(report(100, -0.03, 0.3, order=("B", "A"))) is None
    decision = rollout.on_report(report(100, -0.01, 0.3, order=("B", "A")))
    assert decision is not None and decision.ci_lower == pytest.approx(-0.01)


def test_a_worse_challenger_is_rolled_back_at_once() -> None:
    rollout = Rollout("exp", SPEC)
    decision = rollout.on_report(report(3, -0.4, -0.01))  # little feedback: still decisive
    assert decision is not None
    assert (decision.kind, decision.status, decision.challenger_share) == (
        "rollback",
        "rolled_back",
        0.0,
    )
    assert ramp(rollout) == []


def test_an_alert_on_the_challenger_rolls_it_back_and_one_on_another_model_does_not() -> None:
    rollout = Rollout("exp", SPEC)
    ramp_once = rollout.on_report(report(10, 0.0, 0.3))
    assert ramp_once is not None and ramp_once.step == 1
    assert rollout.on_alert(alert(ModelRef(name="m", version="1"))) is None
    decision = rollout.on_alert(alert())
    assert decision is not None and decision.kind == "rollback" and decision.created_at == T0
    assert rollout.on_alert(alert()) is None  # once


def test_an_alert_before_any_report_uses_the_pinned_model() -> None:
    unknown = Rollout("exp", SPEC)
    assert unknown.on_alert(alert()) is None  # alias arm, no report yet: not known to be it
    pinned = Rollout("exp", SPEC, model=CHALLENGER)
    assert pinned.on_alert(alert()) is not None


def test_pause_holds_the_step_resume_continues_and_abort_ends() -> None:
    rollout = Rollout("exp", SPEC)
    paused = rollout.on_command(command("pause"))
    assert paused is not None and paused.status == "paused"
    assert rollout.on_command(command("pause")) is None
    assert rollout.on_report(report(100, 0.1, 0.3)) is None  # no advance while paused
    assert rollout.on_command(command("resume")).status == "running"  # type: ignore[union-attr]
    assert rollout.on_report(report(100, 0.1, 0.3)) is not None
    aborted = rollout.on_command(command("abort"))
    assert aborted is not None and (aborted.status, aborted.challenger_share) == ("aborted", 0.0)
    assert rollout.on_command(command("resume")) is None


def test_an_alert_rolls_back_a_paused_rollout_too() -> None:
    rollout = Rollout("exp", SPEC, model=CHALLENGER)
    rollout.on_command(command("pause"))
    assert rollout.on_alert(alert()).status == "rolled_back"  # type: ignore[union-attr]


def test_replay_from_a_snapshot_yields_the_same_decisions_and_ids() -> None:
    first = Rollout("exp", SPEC)
    first.on_report(report(10, 0.0, 0.3))
    snapshot = first.to_state()
    went_on = ramp(first, start=1)
    replayed = ramp(Rollout.from_state(snapshot), start=1)
    assert replayed == went_on and went_on
    again = ramp(Rollout("exp", SPEC))
    assert [d.decision_id for d in again][1:] == [d.decision_id for d in went_on]


def test_weights_follow_the_share_and_applying_twice_changes_nothing() -> None:
    exp = Experiment(
        name="exp",
        arms=(
            Arm(name="A", model="m", alias="champion", weight=3),
            Arm(name="B", model="m", version="2"),
            Arm(name="S", model="n", alias="champion", shadow=True),
        ),
        rollout=SPEC,
    )
    half = weighted(exp, 0.5)
    assert weighted(half, 0.5) == half
    assert [(a.weight, a.shadow) for a in half.arms] == [(0.5, False), (0.5, False), (1.0, True)]
    done = weighted(exp, 1.0)
    assert [a.name for a in done.answering] == ["B"] and done.arm("A").shadow
    assert Experiment.model_validate(done.model_dump(mode="json")) == done


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"steps": (0.5, 0.5, 1.0)}, "rise strictly"),
        ({"steps": (0.5, 0.9)}, "end at 1"),
        ({"challenger": "A"}, "must differ"),
        ({"champion": "Z"}, "unknown arms"),
    ],
)
def test_a_rollout_is_validated_with_a_readable_reason(fields: dict, reason: str) -> None:
    spec = {"challenger": "B", "champion": "A"} | fields
    arms = (Arm(name="A", model="m", alias="champion"), Arm(name="B", model="m", version="2"))
    with pytest.raises(ValueError, match=reason):
        Experiment(name="exp", arms=arms, rollout=spec)  # type: ignore[arg-type]
