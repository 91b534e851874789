"""Request-reply over Kafka for the gateway: publish, then await the matching result.

One producer publishes requests and feedback. One consumer reads *every* partition of the
results topic with manual assignment (no consumer group: no join wait, and every gateway replica
sees every result), starting at the end offsets found at start-up. It reads only while requests
wait and for `READ_AFTER_REQUEST` seconds after the last: an idle gateway sends the broker no
fetches (each costs it several storage look-ups). Shadow arms' results are
skipped: nobody waits for them, and they are never an answer. A pending request is an
`asyncio.Future` keyed by inference id, registered before the request is published, so a fast
result cannot slip past it; `ask` publishes a request and awaits its result (not, separately,
the broker's acknowledgement). Results seen recently are kept for `GET /inference/{id}`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from broker.clients import consumer_config, producer_config, take_waiting
from driftline.settings import Settings
from driftline.topics import (
    REQUESTS,
    RESULTS,
    InferenceRequest,
    InferenceResult,
    Message,
    Topic,
    decode,
    message_key,
)
from gateway.metrics import PENDING, PUBLISH_ERRORS

log = logging.getLogger(__name__)

READ_AFTER_REQUEST = 10.0
"""Seconds the results consumer keeps reading after the last request: a result that comes
after its request timed out still reaches the cache of `GET /inference/{id}` (later ones are
found in the lake)."""


_BROKEN_PRODUCER = {
    KafkaError.PRODUCER_FENCED,
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
    KafkaError.UNKNOWN_PRODUCER_ID,
}


DeliveryReport = Callable[[KafkaError | None, object], None]
"""Called on the producer's thread once the broker took a message (None) or refused it."""


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge a message in time."""


class ResultCache:
    """The most recent results, bounded (least recently stored are dropped first)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._items: OrderedDict[UUID, InferenceResult] = OrderedDict()

    def put(self, result: InferenceResult) -> None:
        self._items[result.inference_id] = result
        self._items.move_to_end(result.inference_id)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def get(self, inference_id: UUID) -> InferenceResult | None:
        return self._items.get(inference_id)


class KafkaBridge:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[UUID, list[asyncio.Future[InferenceResult]]] = {}
        self.cache = ResultCache(settings.gateway.result_cache_size)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._all_brokers_down = False
        self._producer = self._new_producer()
        self._consumer: Consumer | None = None
        self._positions: dict[tuple[str, int], int] = {}
        self._last_request = time.monotonic()
        self._wanted = threading.Event()

    def _new_producer(self) -> Producer:
        timeout_ms = int(self._settings.gateway.publish_timeout * 1000)
        return Producer(
            producer_config(self._settings)
            | {
                "message.timeout.ms": timeout_ms,
                "error_cb": self._on_client_error,
                "linger.ms": self._settings.gateway.linger_ms,
            }
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, startup_timeout: float = 10.0) -> None:
        """Assign the results partitions at their current end and start the I/O threads."""
        self._loop = asyncio.get_running_loop()
        topic = RESULTS.name(self._settings.kafka)
        consumer = Consumer(
            consumer_config(self._settings, group_id="driftline-gateway", on_request_path=True)
        )
        metadata = consumer.list_topics(topic, timeout=startup_timeout)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else None
        if not partitions:
            raise RuntimeError(f"results topic {topic!r} not found: is the broker started?")
        for p in sorted(partitions):
            _, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=startup_timeout
            )
            self._positions[(topic, p)] = max(high, 0)
        self._consumer = consumer
        self._wanted.set()
        for target, name in ((self._consume, "results"), (self._poll_producer, "producer")):
            thread = threading.Thread(target=target, name=f"gateway-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("bridge started", extra={"topic": topic, "partitions": len(self._positions)})

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._producer.flush(2)
        if self._consumer is not None:
            self._consumer.close()

    # -- publishing --------------------------------------------------------------------------

    def _on_client_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._all_brokers_down = True
        log.warning("kafka client error", extra={"error": str(error)})
        self._replace_if_broken(error)

    def _replace_if_broken(self, error: KafkaError) -> None:
        """An idempotent producer that lost its sequence with the broker (a broker restart or a
        storage outage can do that) refuses every later message: start over with a new one."""
        if error.fatal() or error.code() in _BROKEN_PRODUCER:
            log.warning("replacing the producer", extra={"error": str(error)})
            self._producer = self._new_producer()

    def _poll_producer(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(1.0)  # returns at the first delivery report

    async def publish(self, topic: Topic, message: Message) -> None:
        """Produce and wait for the broker's acknowledgement, or raise `BrokerUnavailable`."""
        with self._counting_errors(topic):
            loop = asyncio.get_running_loop()
            acked: asyncio.Future[None] = loop.create_future()

            def on_delivery(error: KafkaError | None, _msg: object) -> None:
                if error is not None:
                    self._replace_if_broken(error)
                loop.call_soon_threadsafe(_settle, acked, error)

            await self._produce(topic, message, on_delivery)
            try:
                await asyncio.wait_for(acked, self._settings.gateway.publish_timeout + 1.0)
            except (TimeoutError, KafkaException) as exc:
                raise _unacknowledged(exc) from exc
            self._all_brokers_down = False

    async def ask(self, request: InferenceRequest, timeout: float) -> InferenceResult:
        """Publish a request and wait up to `timeout` seconds for its result; raise
        `BrokerUnavailable` if the broker refuses the request or has not acknowledged it by
        then, `TimeoutError` if it took it and no result came.

        The acknowledgement is not awaited on its own: the result implies it, and a refusal
        ends the wait at once. So the event loop wakes once a request, for its result; the
        delivery report of a request that went well only notes that it came."""
        waiting = self.expect(request.inference_id)
        loop = asyncio.get_running_loop()
        reports: list[KafkaError | None] = []  # appended by the producer's thread

        def on_delivery(error: KafkaError | None, _msg: object) -> None:
            reports.append(error)
            if error is not None:
                self._replace_if_broken(error)
                loop.call_soon_threadsafe(_settle, waiting, error)

        try:
            with self._counting_errors(REQUESTS):
                await self._produce(REQUESTS, request, on_delivery)
                try:
                    async with asyncio.timeout(timeout):
                        result = await waiting
                except KafkaException as exc:
                    raise _unacknowledged(exc) from exc
                except TimeoutError:
                    if not reports:
                        raise BrokerUnavailable(
                            f"the broker did not acknowledge the request within {timeout:g}s"
                        ) from None
                    raise
        finally:
            self.forget(request.inference_id, waiting)
        self._all_brokers_down = False
        return result

    @contextmanager
    def _counting_errors(self, topic: Topic) -> Iterator[None]:
        try:
            yield
        except BrokerUnavailable:
            PUBLISH_ERRORS.labels(topic.name(self._settings.kafka)).inc()
            raise

    async def _produce(self, topic: Topic, message: Message, on_delivery: DeliveryReport) -> None:
        """Queue a message for the broker, or raise `BrokerUnavailable`."""
        if self._all_brokers_down and not await asyncio.to_thread(self.broker_reachable):
            raise BrokerUnavailable("the Kafka broker is unreachable")
        try:
            self._producer.produce(
                topic.name(self._settings.kafka),
                key=message_key(topic, message),
                value=message.to_json(),
                on_delivery=on_delivery,
            )
        except KafkaException as exc:
            self._replace_if_broken(exc.args[0])
            raise BrokerUnavailable(f"could not queue the message: {exc}") from exc
        except BufferError as exc:
            raise BrokerUnavailable(f"could not queue the message: {exc}") from exc

    def broker_reachable(self, timeout: float = 1.0) -> bool:
        try:
            self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        self._all_brokers_down = False
        return True

    # -- results -----------------------------------------------------------------------------

    def expect(self, inference_id: UUID) -> asyncio.Future[InferenceResult]:
        """Register interest in a result; call before publishing the request."""
        assert self._loop is not None, "bridge not started"
        future: asyncio.Future[InferenceResult] = self._loop.create_future()
        self._pending.setdefault(inference_id, []).append(future)
        PENDING.set(len(self._pending))
        self._last_request = time.monotonic()
        self._wanted.set()  # reading already, or from where the consumer left off
        return future

    def forget(self, inference_id: UUID, future: asyncio.Future[InferenceResult]) -> None:
        waiting = self._pending.get(inference_id, [])
        if future in waiting:
            waiting.remove(future)
        if not waiting:
            self._pending.pop(inference_id, None)
        PENDING.set(len(self._pending))

    def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        reading = False
        while not self._stop.is_set():
            if not reading:
                # An assignment with offsets fetches at once (librdkafka's pause/resume waits
                # for a 1 s timer).
                if self._wanted.wait(1.0):
                    self._wanted.clear()
                    consumer.assign([TopicPartition(*tp, at) for tp, at in self._positions.items()])
                    reading = True
                continue
            self._wanted.clear()  # a request from here on sets it again
            idle = time.monotonic() - self._last_request > READ_AFTER_REQUEST
            if idle and not self._pending:
                consumer.unassign()
                reading = False
                continue
            messages = take_waiting(consumer, 500, 0.1)
            if not messages:
                continue
            results = []
            for msg in messages:
                if msg.error() is not None:
                    log.warning("results consumer error", extra={"error": str(msg.error())})
                    continue
                self._positions[(msg.topic() or "", msg.partition() or 0)] = (msg.offset() or 0) + 1
                try:
                    result = decode(InferenceResult, msg.value())
                except ValueError as exc:
                    log.warning("unreadable result skipped", extra={"reason": str(exc)})
                    continue
                if result.shadow_of is None:  # a shadow's answer never goes to a caller
                    results.append(result)
            if results and self._loop is not None:
                self._loop.call_soon_threadsafe(self._deliver, results)

    def _deliver(self, results: list[InferenceResult]) -> None:
        for result in results:
            self.cache.put(result)
            for future in self._pending.pop(result.inference_id, []):
                if not future.done():
                    future.set_result(result)
        PENDING.set(len(self._pending))


def _unacknowledged(exc: Exception) -> BrokerUnavailable:
    return BrokerUnavailable(f"the broker did not acknowledge the message: {exc}")


def _settle(future: asyncio.Future[Any], error: KafkaError | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(KafkaException(error))
