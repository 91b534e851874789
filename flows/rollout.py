"""Rollout flow: `monitoring.ab` + `monitoring.alerts` + `monitoring.rollout.commands`
-> decisions on `monitoring.rollout`, carried out in the experiment store and the registry.

    python -m bytewax.run flows.rollout:flow

Keyed by experiment. Reports and commands name their experiment; an alert names a model version,
so it goes to every experiment that declares a rollout (read from the experiment store), and
each `Rollout` (`driftline.ab.rollout`) checks whether it is its challenger. The experiment's
declared `RolloutSpec` is read from the store with each message, so a PUT that replaces it (a
new rollout id) starts the ramp over, and one that drops it ends the key's state.

Side effects happen here, in a step after the stateful one (`models.rollouts.apply`), rather
than in the gateway or a separate applier: every decision is carried out by the one process
that took it, in decision order, and each effect is idempotent (weights set to the step's
values, the alias moved only when it points elsewhere, the log keyed by decision id), so a
replay after a crash repeats them harmlessly; an older decision replayed after a newer one was
logged leaves the weights alone. The state is snapshotted by Bytewax recovery as builtins
(`Rollout.to_state`); a decision's id and event time derive from the messages, so a replayed
decision is stored once in the lake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic

from driftline.ab import Experiment
from driftline.ab.rollout import Rollout
from driftline.settings import Settings
from driftline.topics import (
    AB,
    ALERTS,
    ROLLOUT,
    ROLLOUT_COMMANDS,
    ABReport,
    Alert,
    Message,
    ModelRef,
    RolloutCommand,
)
from flows.wiring import Outgoing, Parsed, configured, consume, publish_all, settled
from models.experiments import ExperimentStore
from models.rollouts import RolloutLog, apply

Lookup = Callable[[str], Experiment | None]
"""The stored experiment of a name (`ExperimentStore.get`)."""


Routed = tuple[str, Message]
"""(experiment, message): an alert names no experiment, so the route does."""


class RolloutLogic(StatefulLogic[Routed, Outgoing, dict[str, Any]]):
    """One experiment's rollout; the declared spec is looked up with each message."""

    def __init__(self, lookup: Lookup, resume: dict[str, Any] | None) -> None:
        self.lookup = lookup
        self.rollout = Rollout.from_state(resume) if resume is not None else None

    def on_item(self, routed: Routed) -> tuple[list[Outgoing], bool]:
        name, value = routed
        experiment: Experiment | None = self.lookup(name)
        spec = experiment.rollout if experiment is not None else None
        if experiment is None or spec is None:
            self.rollout = None
            return [], StatefulLogic.DISCARD
        if self.rollout is None or self.rollout.spec.id != spec.id:
            self.rollout = Rollout(name, spec, pinned(experiment))
        if isinstance(value, ABReport):
            decision = self.rollout.on_report(value)
        elif isinstance(value, Alert):
            decision = self.rollout.on_alert(value)
        else:
            assert isinstance(value, RolloutCommand)
            decision = self.rollout.on_command(value)
        return ([Outgoing(ROLLOUT, decision)] if decision else []), StatefulLogic.RETAIN

    def snapshot(self) -> dict[str, Any]:
        assert self.rollout is not None  # a key without a rollout is discarded
        return self.rollout.to_state()


def pinned(experiment: Experiment) -> ModelRef | None:
    """The challenger's model version when its arm pins one (alerts can match before a report).

    >>> from driftline.ab import Arm, RolloutSpec
    >>> pinned(Experiment(name="e", arms=(Arm(name="A", model="m", alias="champion"),
    ...        Arm(name="B", model="m", version="4")),
    ...        rollout=RolloutSpec(challenger="B", champion="A"))).key
    'm/4'
    """
    assert experiment.rollout is not None
    arm = experiment.arm(experiment.rollout.challenger)
    return ModelRef(name=arm.model, version=arm.version) if arm.version else None


def route(lookup_all: Callable[[], list[Experiment]], parsed: Parsed) -> list[tuple[str, Routed]]:
    """Keyed (experiment, message) pairs: a report or command to its experiment, an alert to
    every experiment with a rollout."""
    message = parsed.message
    if isinstance(message, Alert):
        names = [e.name for e in lookup_all() if e.rollout is not None]
    else:
        names = [message.experiment]
    return [(name, (name, message)) for name in names]


def build(settings: Settings) -> Dataflow:
    flow = Dataflow("rollout")
    parsed, dead = consume(flow, settings, [AB, ALERTS, ROLLOUT_COMMANDS])
    opened: dict[str, Any] = {}  # the stores, opened on first use: building touches no file

    def store() -> ExperimentStore:
        if "store" not in opened:
            opened["store"] = ExperimentStore.of(settings)
            opened["log"] = RolloutLog.of(settings)
        return opened["store"]

    keyed = op.flat_map("route", parsed, lambda p: route(lambda: store().list(), p))
    decided = op.stateful(
        "decide", keyed, lambda resume: RolloutLogic(lambda n: store().get(n), resume)
    )

    def carry_out(out: Outgoing) -> Outgoing:
        apply(settings, store(), opened["log"], out.message)  # type: ignore[arg-type]
        return out

    applied = op.map("apply", op.map("unkey", decided, lambda kv: kv[1]), carry_out)
    publish_all(applied, dead, settings)
    return flow


def flow() -> Dataflow:
    """The rollout dataflow with the configured settings
    (`python -m bytewax.run flows.rollout:flow`)."""
    return settled(build(configured()))
