"""Valid messages with sensible defaults, for tests that only care about a few fields."""

from __future__ import annotations

import uuid
from typing import Any

from driftline.clock import utc_now
from driftline.topics import Feedback, InferenceResult, ModelRef


def make_result(**fields: Any) -> InferenceResult:
    prediction = fields.pop("prediction", 0.8)
    values: dict[str, Any] = {
        "inference_id": uuid.uuid4(),
        "created_at": utc_now(),
        "data": "hi",
        "model": ModelRef(name="m", version="1"),
        "prediction": prediction,
        "label": int(prediction >= 0.5),
        "scored_at": utc_now(),
    }
    return InferenceResult(**(values | fields))


def make_feedback(inference_id: uuid.UUID, score: float, **fields: Any) -> Feedback:
    values: dict[str, Any] = {
        "feedback_id": uuid.uuid4(),
        "inference_id": inference_id,
        "feedback": score,
        "created_at": utc_now(),
    }
    return Feedback(**(values | fields))
