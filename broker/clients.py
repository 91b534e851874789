"""Kafka client settings and topic administration, valid against tansu and Apache Kafka alike.

The settings steer around the local broker's quirks (../shared/PLATFORM.md) without depending
on them: consumers are assigned partitions by hand (no group join wait), offsets live in Bytewax
recovery stores rather than in the broker, and every sink tolerates re-delivery.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.settings import Settings
from driftline.topics import ALL_TOPICS

log = logging.getLogger(__name__)

FETCH_WAIT_MS = 10
"""How long a fetch may wait for data. librdkafka's 500 ms default adds up to that much to
every hop of the request-reply path when traffic is sparse; 10 ms costs a few idle fetches."""


def producer_config(settings: Settings) -> dict[str, Any]:
    """Idempotent, acknowledged by all replicas, batched for a few milliseconds."""
    return {
        "bootstrap.servers": settings.kafka.brokers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.timeout.ms": int(settings.gateway.publish_timeout * 1000) + 2000,
    }


def consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    """For consumers with manual `assign()`: no group join, no broker-side offsets."""
    return {
        "bootstrap.servers": settings.kafka.brokers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "enable.partition.eof": False,
        "fetch.wait.max.ms": FETCH_WAIT_MS,
    }


def admin(settings: Settings, quiet: bool = False) -> AdminClient:
    """`quiet` silences librdkafka's connection-refused lines, for probes that expect them."""
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka.brokers}
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
            NewTopic(n, num_partitions=settings.kafka.partitions, replication_factor=1)
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
