"""The monitoring topics, followed live for the dashboard while someone watches.

One consumer per gateway process reads every partition of `monitoring.drift`, `monitoring.ab`
and `monitoring.alerts` from their end (manual assignment, no group), and hands each message,
as the same flat row the lake stores, to every subscriber's queue. It runs only while at least
one page is open: with no one watching, the dashboard costs the broker nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from broker.clients import consumer_config
from driftline.settings import Settings
from driftline.tables import AB_METRICS, ALERTS, DRIFT_METRICS, LakeTable, Row
from driftline.topics import AB, DRIFT, Topic, decode
from driftline.topics import ALERTS as ALERTS_TOPIC

log = logging.getLogger(__name__)

FEEDS: dict[str, tuple[Topic, LakeTable]] = {
    "drift": (DRIFT, DRIFT_METRICS),
    "ab": (AB, AB_METRICS),
    "alert": (ALERTS_TOPIC, ALERTS),
}
"""Event name on the page -> the topic it comes from and the lake table holding its history."""

Event = tuple[str, Row]
QUEUE_SIZE = 1000
"""Events a slow page may fall behind by; beyond, its oldest are dropped (the page reloads
history when it reconnects)."""


def json_ready(row: Row, table: LakeTable) -> Row:
    """A row as the page reads it: JSON columns parsed (the lake returns them as text)."""
    parsed = {column for column, kind in table.columns.items() if kind == "JSON"}
    return {
        column: json.loads(value) if column in parsed and isinstance(value, str) else value
        for column, value in row.items()
    }


class MonitoringTail:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._lock = threading.Lock()
        self._stop: threading.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self) -> asyncio.Queue[Event]:
        """A queue of (event name, row) for every monitoring message from now on."""
        queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        with self._lock:
            self._subscribers.add(queue)
            if self._stop is None:
                self._loop = asyncio.get_running_loop()
                self._stop = threading.Event()
                threading.Thread(
                    target=self._follow, args=(self._stop,), name="monitoring-tail", daemon=True
                ).start()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        with self._lock:
            self._subscribers.discard(queue)
            if not self._subscribers and self._stop is not None:
                self._stop.set()
                self._stop = None

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()
            if self._stop is not None:
                self._stop.set()
                self._stop = None

    def _deliver(self, event: Event) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    def _follow(self, stop: threading.Event) -> None:
        kafka = self._settings.kafka
        by_topic = {t.name(kafka): (name, t, table) for name, (t, table) in FEEDS.items()}
        consumer = Consumer(consumer_config(self._settings, group_id="driftline-dashboard"))
        try:
            partitions = [
                TopicPartition(topic, p, OFFSET_END)
                for topic in by_topic
                for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ]
            consumer.assign(partitions)
            while not stop.is_set():
                message = consumer.poll(0.5)
                if message is None or message.error() is not None:
                    continue
                name, topic, table = by_topic[str(message.topic())]
                try:
                    row = table.row(decode(topic.schema, message.value()))
                except ValueError:  # the flows' dead-letter path handles bad messages
                    continue
                assert self._loop is not None
                self._loop.call_soon_threadsafe(self._deliver, (name, json_ready(row, table)))
        except KafkaException as exc:
            log.warning("monitoring tail stopped", extra={"error": str(exc)})
        finally:
            consumer.close()
