from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from pydantic import ValidationError

from driftline import settings
from driftline.clock import utc_now
from driftline.topics import (
    ALL_TOPICS,
    REQUESTS,
    DeadLetter,
    Feedback,
    InferenceRequest,
    decode,
    message_key,
)


def request(**changes: object) -> InferenceRequest:
    values = {"inference_id": uuid.uuid4(), "created_at": utc_now(), "data": "hello"}
    return InferenceRequest(**(values | changes))


def test_messages_round_trip_through_json() -> None:
    original = request(subject="user-7")
    assert decode(InferenceRequest, original.to_json()) == original


def test_event_time_keeps_microseconds_and_utc() -> None:
    original = request()
    again = decode(InferenceRequest, original.to_json())
    assert again.created_at.microsecond == original.created_at.microsecond
    assert again.created_at.utcoffset().total_seconds() == 0


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        request(created_at=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{nope", "not JSON"),
        (None, "no value"),
        (b'{"data": "x"}', "inference_id"),
        (b'{"inference_id": "x", "created_at": "2026-01-01T00:00:00Z", "data": "x"}', "UUID"),
    ],
)
def test_decode_explains_what_is_wrong(raw: bytes | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode(InferenceRequest, raw)


def test_unknown_fields_are_refused() -> None:
    payload = request().model_dump(mode="json") | {"surprise": 1}
    with pytest.raises(ValidationError, match="surprise"):
        InferenceRequest.model_validate(payload)


def test_feedback_must_lie_in_unit_interval() -> None:
    with pytest.raises(ValidationError):
        Feedback(
            feedback_id=uuid.uuid4(), inference_id=uuid.uuid4(), feedback=1.2, created_at=utc_now()
        )


def test_dead_letter_keeps_the_original_bytes() -> None:
    raw = b"\xff\x00 not text"
    letter = DeadLetter.of("inference", "not JSON", raw, source_topic="t", key=b"k")
    assert decode(DeadLetter, letter.to_json()).payload() == raw


def test_topic_names_carry_the_prefix_and_are_unique() -> None:
    s = settings.load(topic_prefix="staging.")
    names = [t.name(s.kafka) for t in ALL_TOPICS]
    assert REQUESTS.name(s.kafka) == "staging.inference.requests"
    assert len(set(names)) == len(names) == 11


def test_messages_about_one_inference_are_keyed_by_its_id() -> None:
    message = request()
    assert message_key(REQUESTS, message) == str(message.inference_id).encode()
