"""The rollout flow's logic and the applier: decisions per experiment, carried out once in the
experiment store and the registry however often they are replayed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bytewax.operators import StatefulLogic

from driftline import settings
from driftline.ab import Arm, Experiment, RolloutSpec
from driftline.topics import ABReport, ArmStats, ModelRef, RolloutDecision, SequentialTest
from flows.rollout import RolloutLogic, route
from flows.wiring import Parsed
from models.experiments import ExperimentStore
from models.rollouts import RolloutLog, apply

T0 = datetime(2026, 11, 29, 12, tzinfo=UTC)
SPEC = RolloutSpec(challenger="B", champion="A", steps=(0.25, 0.5, 1.0), min_feedback=5, id="r1")
EXPERIMENT = Experiment(
    name="exp",
    arms=(Arm(name="A", model="m", alias="champion"), Arm(name="B", model="m", version="2")),
    rollout=SPEC,
)


def report(feedback: int, lower: float = 0.0, upper: float = 0.5) -> ABReport:
    arms = [
        ArmStats(arm="A", traffic=10, feedback_count=feedback),
        ArmStats(
            arm="B", traffic=10, feedback_count=feedback, model=ModelRef(name="m", version="2")
        ),
    ]
    test = SequentialTest(arm_a="A", arm_b="B", ci_lower=lower, ci_upper=upper, decision="x")
    return ABReport(experiment="exp", emitted_at=T0, arms=arms, test=test)


def decisions_of(logic: RolloutLogic, *reports: ABReport) -> list[RolloutDecision]:
    out = []
    for r in reports:
        items, _ = logic.on_item(("exp", r))
        out += [o.message for o in items]  # type: ignore[misc]
    return out


def test_the_logic_ramps_per_the_stored_spec_and_restarts_when_it_is_replaced() -> None:
    stored = {"exp": EXPERIMENT}
    logic = RolloutLogic(stored.get, None)
    first = decisions_of(logic, report(5), report(10), report(15))
    assert [d.kind for d in first] == ["advance", "complete"]
    resumed = RolloutLogic(stored.get, logic.snapshot())
    assert decisions_of(resumed, report(20)) == []  # completed, also after a restore
    stored["exp"] = EXPERIMENT.model_copy(update={"rollout": SPEC.model_copy(update={"id": "r2"})})
    again = decisions_of(resumed, report(25))
    assert [(d.kind, d.rollout_id) for d in again] == [("advance", "r2")]
    del stored["exp"]
    assert resumed.on_item(("exp", report(30))) == ([], StatefulLogic.DISCARD)


def test_an_alert_is_routed_to_every_experiment_with_a_rollout() -> None:
    from tests.unit.ab.test_rollout import alert

    other = Experiment(name="plain", arms=(Arm(name="A", model="m", alias="champion"),))
    routed = route(lambda: [EXPERIMENT, other], Parsed(alert(), "monitoring.alerts", 0, 1))
    assert [key for key, _ in routed] == ["exp"]


def test_applying_sets_weights_moves_the_alias_once_and_a_replayed_old_one_changes_nothing(
    tmp_path: Path,
) -> None:
    s = settings.load({}, home=tmp_path)
    store, log = ExperimentStore(tmp_path / "e.sqlite"), RolloutLog(tmp_path / "e.sqlite")
    store.put(EXPERIMENT)
    aliases: dict[str, str] = {}

    def move(_: object, name: str, version: str, alias: str) -> None:
        aliases[f"{name}@{alias}"] = version

    logic = RolloutLogic(store.get, None)
    advance, complete = decisions_of(logic, report(5), report(10))
    for decision in (advance, advance, complete, advance, complete):  # with replays
        apply(s, store, log, decision, alias=move)
    final = store.get("exp")
    assert final is not None
    assert [(a.name, a.shadow) for a in final.arms] == [("A", True), ("B", False)]
    assert aliases == {"m@champion": "2"}
    assert [d.kind for d in log.decisions("exp", "r1")] == ["advance", "complete"]
