"""`driftline experiments`: list, show, create or replace, and delete A/B experiments; show,
pause, resume or abort an experiment's rollout (`driftline experiments rollout NAME ACTION`)."""

from __future__ import annotations

import argparse
import sys
import uuid

from pydantic import ValidationError

from driftline.ab import Arm, Experiment
from driftline.clock import utc_now
from driftline.settings import Settings
from driftline.topics import ROLLOUT_COMMANDS, Message, RolloutCommand, Topic, message_key
from models.experiments import ExperimentStore, current, missing_models


def parse_arm(spec: str) -> dict[str, object]:
    """`NAME=MODEL@ALIAS[:WEIGHT]` or `NAME=MODEL/VERSION[:WEIGHT]` as an arm's fields.

    >>> parse_arm("A=sentiment_logreg_tfidf@champion:0.7")
    {'name': 'A', 'model': 'sentiment_logreg_tfidf', 'weight': 0.7, 'alias': 'champion'}
    >>> parse_arm("B=sentiment_xgboost_minilm/3")
    {'name': 'B', 'model': 'sentiment_xgboost_minilm', 'weight': 1.0, 'version': '3'}
    """
    name, sep, rest = spec.partition("=")
    address, _, weight = rest.partition(":")
    model, at, alias = address.partition("@")
    if not at:
        model, _, version = address.partition("/")
    if not (sep and name and model and (alias if at else version)):
        raise argparse.ArgumentTypeError(f"arm {spec!r}: expected NAME=MODEL@ALIAS[:WEIGHT]")
    arm: dict[str, object] = {"name": name, "model": model, "weight": float(weight or 1)}
    return arm | ({"alias": alias} if at else {"version": version})


def parse_shadow(spec: str) -> dict[str, object]:
    """`NAME=MODEL@ALIAS[:SAMPLE]` or `NAME=MODEL/VERSION[:SAMPLE]` as a shadow arm's fields.

    >>> arm = parse_shadow("S=sentiment_xgboost_tfidf@champion:0.5")
    >>> arm["name"], arm["alias"], arm["shadow"], arm["shadow_sample"], "weight" in arm
    ('S', 'champion', True, 0.5, False)
    """
    try:
        arm = parse_arm(spec)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"shadow {spec!r}: expected NAME=MODEL@ALIAS[:SAMPLE]"
        ) from None
    return {k: v for k, v in arm.items() if k != "weight"} | {
        "shadow": True,
        "shadow_sample": arm["weight"],
    }


def describe(arm: Arm) -> str:
    """One arm as `experiments list` shows it: as `--arm` or `--shadow` would write it.

    >>> describe(Arm(name="S", model="m", version="2", shadow=True, shadow_sample=0.5))
    'S=m/2:shadow 0.5'
    """
    address = f"{arm.name}={arm.model}{'@' + arm.alias if arm.alias else '/' + str(arm.version)}"
    return f"{address}:shadow {arm.shadow_sample:g}" if arm.shadow else f"{address}:{arm.weight:g}"


# --- Rollouts (issue 13, part 2) ---


def cmd_rollout(s: Settings, name: str, action: str) -> int:
    """`show` prints the rollout's state and decisions as JSON; `pause`, `resume` and `abort`
    publish a command on `monitoring.rollout.commands`, as `POST .../rollout/{action}` does."""
    from models.rollouts import RolloutLog, RolloutRefused, declared, progress

    log = RolloutLog.of(s)
    try:
        experiment = declared(ExperimentStore.of(s), log, name, steering=action != "show")
    except RolloutRefused as refused:
        print(refused, file=sys.stderr)
        return 1
    if action == "show":
        from gateway.schemas import RolloutOut  # what GET /experiments/{name}/rollout answers

        state = progress(experiment, log)._asdict()
        shown = RolloutOut(experiment=name, **state)
        print(shown.model_dump_json(indent=2))
        return 0
    command = RolloutCommand.model_validate(
        {"command_id": uuid.uuid4(), "experiment": name, "action": action, "created_at": utc_now()}
    )
    if not publish(s, ROLLOUT_COMMANDS, command):
        print("the broker did not acknowledge the command", file=sys.stderr)
        return 1
    print(command.model_dump_json())
    return 0


def publish(s: Settings, topic: Topic, message: Message, timeout: float = 30.0) -> bool:
    """Produce one message and wait for the broker's acknowledgement."""
    from confluent_kafka import Producer

    from broker.clients import producer_config

    acked: list[bool] = []
    producer = Producer(producer_config(s))
    producer.produce(
        topic.name(s.kafka),
        key=message_key(topic, message),
        value=message.to_json(),
        on_delivery=lambda error, _msg: acked.append(error is None),
    )
    producer.flush(timeout)
    return acked == [True]


# --- end of rollouts ---


def cmd_experiments(s: Settings, args: argparse.Namespace) -> int:
    if args.action != "list" and not args.name:
        print(f"experiments {args.action} needs a NAME", file=sys.stderr)
        return 2
    if args.action == "rollout":
        return cmd_rollout(s, args.name, args.rollout_action or "show")
    store = ExperimentStore.of(s)
    if args.action == "delete":
        deleted = store.delete(args.name)
        print("deleted" if deleted else f"no stored experiment {args.name!r}")
        return 0 if deleted else 1
    if args.action == "put":
        if not args.arm:
            print("put needs at least one --arm", file=sys.stderr)
            return 2
        arms = (*args.arm, *(args.shadow or ()))
        try:
            experiment = Experiment(
                name=args.name, arms=arms, mode=args.mode, description=args.description
            )
        except ValidationError as exc:
            reasons = (str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            print("; ".join(reasons), file=sys.stderr)
            return 2
        missing = missing_models(s, experiment)
        if missing:
            print("; ".join(missing), file=sys.stderr)
            return 1
        store.put(experiment)
        print(experiment.model_dump_json(indent=2))
        return 0
    found = current(s, store)
    if args.action == "show":
        if args.name not in found:
            print(f"no experiment {args.name!r}", file=sys.stderr)
            return 1
        print(found[args.name].model_dump_json(indent=2))
        return 0
    for e in found.values():
        print(f"{e.name}\t{e.mode}\t{', '.join(map(describe, e.arms))}")
    return 0
