"""`KafkaBridge.ask`: what each combination of delivery report and result answers, with a
producer that reports from its own thread as librdkafka's does (or never, or with an error)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from driftline import settings
from driftline.clock import utc_now
from driftline.topics import InferenceRequest, InferenceResult
from gateway.bridge import BrokerUnavailable, DeliveryReport, KafkaBridge
from tests.factories import make_result


class Producer:
    """Takes each message and reports on it from another thread: `report` is None (no report
    at all), "ok" or a `KafkaError`; `answer` says whether the flow's result then comes."""

    def __init__(self, bridge: KafkaBridge, report: Any, answer: bool) -> None:
        self.bridge, self.report, self.answer = bridge, report, answer
        self.loop = asyncio.get_running_loop()

    def produce(self, _topic: str, key: bytes, value: bytes, on_delivery: DeliveryReport) -> None:
        request = InferenceRequest.model_validate_json(value)
        result = make_result(inference_id=request.inference_id)

        def broker() -> None:
            if self.report is not None:
                on_delivery(None if isinstance(self.report, str) else self.report, None)
            if self.answer:
                self.loop.call_soon_threadsafe(self.bridge._deliver, [result])

        thread = threading.Thread(target=broker)  # done before the bridge waits: no race
        thread.start()
        thread.join()


def ask(tmp_path: Path, report: Any, answer: bool) -> InferenceResult:
    async def go() -> InferenceResult:
        bridge = KafkaBridge(settings.load({}, home=tmp_path))
        bridge._loop = asyncio.get_running_loop()  # what `start` sets, without a broker
        bridge._producer = Producer(bridge, report, answer)  # type: ignore[assignment]
        request = InferenceRequest(inference_id=uuid.uuid4(), created_at=utc_now(), data="hi")
        return await bridge.ask(request, timeout=0.5)

    return asyncio.run(go())


def test_the_result_is_the_answer_whether_or_not_the_report_came_first(tmp_path: Path) -> None:
    assert ask(tmp_path, "ok", answer=True).prediction == 0.8
    assert ask(tmp_path, None, answer=True).prediction == 0.8


def test_a_refused_request_is_broker_unavailable_at_once(tmp_path: Path) -> None:
    refused = KafkaError(KafkaError._MSG_TIMED_OUT)
    with pytest.raises(BrokerUnavailable, match="did not acknowledge the message"):
        ask(tmp_path, refused, answer=False)


def test_no_result_in_time_is_a_timeout_once_the_broker_took_the_request(tmp_path: Path) -> None:
    with pytest.raises(TimeoutError):
        ask(tmp_path, "ok", answer=False)


def test_no_report_in_time_is_broker_unavailable_not_a_timeout(tmp_path: Path) -> None:
    with pytest.raises(BrokerUnavailable, match=r"did not acknowledge the request within 0\.5s"):
        ask(tmp_path, None, answer=False)
