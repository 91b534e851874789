"""Kafka client settings and topic administration, valid against tansu and Apache Kafka alike.

The settings steer around the local broker's quirks (../shared/PLATFORM.md) without depending
on them: consumers are assigned partitions by hand (no group join wait), offsets live in Bytewax
recovery stores rather than in the broker, and every sink tolerates re-delivery.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.settings import Settings
from driftline.topics import ALL_TOPICS

log = logging.getLogger(__name__)


def client_config(brokers: str) -> dict[str, Any]:
    """What every client driftline makes starts from: the brokers, and no metrics pushed.

    librdkafka (2.5 and later) asks each broker it connects to for client-telemetry
    subscriptions (KIP-714), again every 5-6 s on every connection: in an idle stack, 4.7 of the
    14 requests a second tansu got (26 connections). They touch no storage, so the idle stack
    cost no less without them (4.4-5.0% of a core both ways), but nobody here reads them.
    """
    return {"bootstrap.servers": brokers, "enable.metrics.push": False}


def producer_config(settings: Settings) -> dict[str, Any]:
    """Acknowledged by all replicas, retried until acknowledged, batched for a few milliseconds.

    Not idempotent, on purpose: delivery is at-least-once and every consumer de-duplicates, and
    tansu loses an idempotent producer's batch that was in flight when the broker died (it
    records the producer's sequence before it writes the batch, so the retry after its restart
    is answered as a duplicate and never written: measured, about 1 message in 1,000 around a
    kill -9). A plain retry writes the batch again, at worst twice.
    """
    return client_config(settings.kafka.brokers) | {
        "enable.idempotence": False,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": int(settings.gateway.publish_timeout * 1000) + 2000,
    }


def consumer_config(
    settings: Settings, group_id: str, on_request_path: bool = False
) -> dict[str, Any]:
    """For consumers with manual `assign()`: no group join, no broker-side offsets. A consumer
    `on_request_path` (a caller waits for what it reads) fetches with its own, shorter wait."""
    kafka = settings.kafka
    return client_config(kafka.brokers) | {
        "group.id": group_id,
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": (
            kafka.request_path_fetch_wait_ms if on_request_path else kafka.fetch_wait_ms
        ),
    }


def take_waiting(consumer: Consumer, most: int, timeout: float) -> list[Message]:
    """Wait up to `timeout` seconds for one message, then take up to `most` in all of what is
    there already: `consume(most, timeout)` alone would wait until `most` arrive or the whole
    timeout passes."""
    first = consumer.poll(timeout)
    return [] if first is None else [first, *consumer.consume(most - 1, 0)]


def admin(settings: Settings, quiet: bool = False) -> AdminClient:
    """`quiet` silences librdkafka's connection-refused lines, for probes that expect them."""
    config = client_config(settings.kafka.brokers)
    if quiet:
        config["log_level"] = 0
    return AdminClient(config)


def broker_reachable(settings: Settings, timeout: float = 1.0) -> bool:
    """True when a broker answers a metadata request within `timeout` seconds."""
    try:
        admin(settings, quiet=True).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def wait_for_broker(settings: Settings, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not broker_reachable(settings, timeout=0.5):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no Kafka broker answered at {settings.kafka.brokers} in {timeout:.0f}s"
            )
        time.sleep(0.05)


def ensure_topics(settings: Settings, timeout: float = 10.0) -> list[str]:
    """Create every driftline topic that does not exist yet; returns the names it created."""
    client = admin(settings)
    existing = set(client.list_topics(timeout=timeout).topics)
    wanted = [t.name(settings.kafka) for t in ALL_TOPICS]
    missing = [n for n in wanted if n not in existing]
    if not missing:
        return []
    futures = client.create_topics(
        [
            NewTopic(
                n,
                num_partitions=settings.kafka.partitions,
                replication_factor=settings.kafka.replication_factor,
            )
            for n in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            # Another process may have created it between list and create: that is fine.
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    log.info("topics created", extra={"topics": created})
    return created


def epoch(settings: Settings, timeout: float = 10.0) -> str:
    """An identity of the broker's log: a digest of the ids of driftline's topics.

    The ids survive a broker restart on durable storage and change when the log is lost (memory
    storage, or storage wiped), when topics are created again. Flows keep their recovery stores
    (and so their Kafka offsets) per epoch, so they never resume at offsets of a log that no
    longer exists, where a consumer would wait silently for ever.
    """
    client = admin(settings)
    names = sorted(t.name(settings.kafka) for t in ALL_TOPICS)
    described = client.describe_topics(TopicCollection(names), request_timeout=timeout)
    ids = [str(described[name].result(timeout).topic_id) for name in names]
    return hashlib.blake2b(" ".join(ids).encode(), digest_size=6).hexdigest()
