"""The Kafka plumbing every flow shares: read topics, parse or dead-letter, publish.

A flow is written as a few named steps between `consume` and `publish_all`:

    flow = Dataflow("inference")
    parsed, dead = consume(flow, settings, [REQUESTS])
    ...
    publish_all(outputs, dead, settings)

Anything that cannot be parsed or validated becomes a `DeadLetter` with the reason and the
original bytes, and the flow goes on. Each flow module exposes `flow()`, the factory that
`python -m bytewax.run flows.<name>:flow` calls: importing a flow module touches nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Generic, TypeGuard, TypeVar, cast

import bytewax.operators as op
from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.dataflow import Dataflow, Stream
from pydantic import ValidationError

from broker.clients import consumer_config, producer_config
from driftline import heap, logs
from driftline.settings import Settings, load
from driftline.topics import DEADLETTER, DeadLetter, Message, Topic, decode, message_key
from flows.kafka import IDLE_SLEEPS, REQUEST_PATH_SLEEPS, KafkaInput, KafkaOutput, Raw
from flows.metrics import DEAD_LETTERS, reason_kind

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

FLOW_DELIVERY_TIMEOUT_MS = 120_000
"""How long a flow's producer keeps retrying a message while the broker is away before the
flow stops (and replays after its restart): long, so a broker restart is only a pause."""


@dataclass(frozen=True)
class Parsed(Generic[M]):
    """A valid message and where it came from."""

    message: M
    topic: str
    partition: int | None
    offset: int | None


@dataclass(frozen=True)
class Outgoing:
    """A message to publish on a topic."""

    topic: Topic
    message: Message


def read(
    step_id: str,
    flow: Dataflow,
    settings: Settings,
    topics: list[Topic],
    on_request_path: bool = False,
) -> Stream[Raw]:
    """Raw messages from `topics`; consumer errors are logged (they carry no message). Idle,
    the source looks for new messages every `DRIFTLINE_FLOW_IDLE_PROBE_SECONDS`
    (`flows.fetching.Pacing`) and its worker may wake `DRIFTLINE_FLOW_IDLE_TIMER_SLACK_MS` late
    (`flows.timerslack`); busy, it may take messages only every
    `DRIFTLINE_FLOW_TAKE_EVERY_SECONDS` (`flows.fetching.Cadence`), and its worker may wake
    `DRIFTLINE_FLOW_BUSY_TIMER_SLACK_MS` late when it has nothing to do. The request
    path has settings of its own and takes messages as they come: run as one process, its worker
    waits for the next request in the consumer (`DRIFTLINE_FLOW_REQUEST_BUSY_WAIT_MS`, idle
    `DRIFTLINE_FLOW_REQUEST_IDLE_WAIT_MS`), else it polls a partition that found nothing again
    within 2 ms (`flows.kafka.REQUEST_PATH_SLEEPS`)."""
    flows = settings.flows
    sleeps: tuple[float, ...]
    if on_request_path:
        probe_every, slack = flows.request_idle_probe_seconds, flows.request_idle_timer_slack_ms
        idle_fetch_wait, sleeps = flows.request_idle_fetch_wait_ms, REQUEST_PATH_SLEEPS
        take_every, busy_slack = 0.0, 0.0
    else:
        probe_every, slack = flows.idle_probe_seconds, flows.idle_timer_slack_ms
        idle_fetch_wait, sleeps, take_every = 0, IDLE_SLEEPS, flows.take_every_seconds
        busy_slack = flows.busy_timer_slack_ms
    # A waiting worker of a cluster would hold up what the other workers route to it.
    alone = on_request_path and flows.processes == 1
    idle_wait = flows.request_idle_wait_ms / 1000 if alone else 0.0
    busy_wait = flows.request_busy_wait_ms / 1000 if alone else 0.0
    config = consumer_config(settings, "driftline-" + flow.flow_id, on_request_path=on_request_path)
    source = KafkaInput(
        settings.kafka.brokers,
        [t.name(settings.kafka) for t in topics],
        settings.flows.batch_size,
        {k: v for k, v in config.items() if k != "bootstrap.servers"},
        probe_every,
        slack,
        flow=flow.flow_id,
        idle_fetch_wait_ms=idle_fetch_wait,
        sleeps=sleeps,
        take_every=take_every,
        idle_wait=idle_wait,
        busy_slack_ms=busy_slack,
        busy_wait=busy_wait,
    )
    return op.input(step_id, flow, source)


def dead_letter(flow_name: str, raw: Raw, reason: str) -> DeadLetter:
    return DeadLetter.of(
        flow_name,
        reason,
        raw.value,
        source_topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        key=raw.key,
    )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "invalid message: " + "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def parse(
    step_id: str,
    up: Stream[Raw],
    flow_name: str,
    settings: Settings,
    topics: list[Topic],
) -> tuple[Stream[Parsed], Stream[DeadLetter]]:
    """Split raw messages into parsed ones and dead letters (with the reason)."""
    schemas = {t.name(settings.kafka): t.schema for t in topics}

    def attempt(raw: Raw) -> Parsed | DeadLetter:
        schema = schemas.get(raw.topic or "")
        if schema is None:
            return dead_letter(flow_name, raw, f"no schema for topic {raw.topic!r}")
        try:
            message = decode(schema, raw.value)
        except ValueError as exc:  # ValidationError is a ValueError
            return dead_letter(flow_name, raw, _reason(exc))
        return Parsed(message, raw.topic or "", raw.partition, raw.offset)

    branches = op.branch(f"{step_id}_ok", op.map(step_id, up, attempt), _is_parsed)
    # Whatever is not parsed is a dead letter.
    letters = cast(Stream[DeadLetter], branches.falses)
    return branches.trues, op.map(f"{step_id}_dead", letters, _log_dead_letter)


def _is_parsed(item: Parsed | DeadLetter) -> TypeGuard[Parsed]:
    return isinstance(item, Parsed)


def _log_dead_letter(letter: DeadLetter) -> DeadLetter:
    log.warning(
        "dead letter",
        extra={
            "flow": letter.flow,
            "topic": letter.source_topic,
            "partition": letter.partition,
            "offset": letter.offset,
            "reason": letter.reason,
        },
    )
    return letter


def to_deadletter(letter: DeadLetter) -> Outgoing:
    return Outgoing(DEADLETTER, letter)


def publish(step_id: str, up: Stream[Outgoing], settings: Settings) -> None:
    """Serialize and produce each outgoing message to its topic, keyed as the topic says.
    Dead letters are counted here, by kind of reason (`flows.metrics`), whichever step made
    them."""
    flow_name = up.flow().flow_id

    def serialize(out: Outgoing) -> KafkaSinkMessage[bytes, bytes]:
        if isinstance(out.message, DeadLetter):
            DEAD_LETTERS.labels(out.message.flow, reason_kind(out.message.reason)).inc()
        return KafkaSinkMessage(
            key=message_key(out.topic, out.message),
            value=out.message.to_json(),
            topic=out.topic.name(settings.kafka),
        )

    config = producer_config(settings) | {"message.timeout.ms": FLOW_DELIVERY_TIMEOUT_MS}
    sink = KafkaOutput(config, flow=flow_name)
    op.output(step_id, op.map(f"{step_id}_serialize", up, serialize), sink)


def consume(
    flow: Dataflow, settings: Settings, topics: list[Topic], on_request_path: bool = False
) -> tuple[Stream[Parsed], Stream[DeadLetter]]:
    """Valid messages from `topics`, and dead letters for the rest (named after the flow).
    The request path says so: its first request after a quiet spell must not wait long."""
    raw = read("in", flow, settings, topics, on_request_path)
    return parse("parse", raw, flow.flow_id, settings, topics)


def publish_all(out: Stream[Outgoing], dead: Stream[DeadLetter], settings: Settings) -> None:
    """Publish a flow's output and its dead letters."""
    publish("out", op.merge("all", out, op.map("dead", dead, to_deadletter)), settings)


def configured() -> Settings:
    """The settings of a flow process, validated, with logging set up: the first thing every
    `flow()` factory does, so a wrong setting stops the flow before it reads anything."""
    settings = load()
    logs.configure(settings.log_level)
    return settings


def settled(flow: Dataflow) -> Dataflow:
    """The built flow, once the process's start-up heap is out of the collector's way
    (`driftline.heap`): the last thing every `flow()` factory does."""
    heap.settle()
    return flow
