"""The gateway's HTTP bodies. Unknown fields are rejected (422) so a typo never goes unseen."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from driftline.ab import Arm
from driftline.clock import utc_now
from driftline.topics import InferenceResult, ModelRef, Probability, UtcDatetime

FUTURE_SKEW = timedelta(minutes=1)
"""Clock skew tolerated between a client's `created_at` and the gateway's clock."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InferenceIn(_Body):
    data: str = Field(min_length=1, max_length=100_000, description="The text to classify.")
    subject: str | None = Field(
        None, max_length=512, description="Sticky key (e.g. a user id) for A/B assignment."
    )
    log_to_lakehouse: bool = Field(True, description="Store the inference in the lake.")
    experiment: str | None = Field(
        None, description="A/B experiment to route through; the default experiment when absent."
    )
    models: list[ModelRef] | None = Field(
        None, min_length=1, description="Explicit candidates; one is picked per subject."
    )
    created_at: UtcDatetime | None = Field(
        None,
        description="Event time, for backfills and simulations (timezone required, not in the "
        "future); the time of the request when absent. Monitoring windows use it.",
    )

    @field_validator("created_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > utc_now() + FUTURE_SKEW:
            raise ValueError("created_at is in the future")
        return value


class InferenceOut(BaseModel):
    inference_id: UUID
    model: ModelRef
    prediction: Probability = Field(description="P(y=1) from the model.")
    label: int
    created_at: datetime
    experiment: str | None = None
    arm: str | None = None

    @classmethod
    def from_result(cls, result: InferenceResult) -> InferenceOut:
        assert result.model is not None and result.prediction is not None
        assert result.label is not None
        return cls.model_validate(result, from_attributes=True)


MAX_BATCH = 1000
"""Most texts one `POST /inferences` may carry."""


class InferenceBatchIn(_Body):
    """`POST /inferences`: many texts, each scored and logged exactly like `POST /inference`."""

    items: list[InferenceIn] = Field(min_length=1, max_length=MAX_BATCH)


class InferenceItemOut(BaseModel):
    """One text's outcome: the status `POST /inference` would have answered, and its body."""

    inference_id: UUID
    status: int = Field(description="200, or 404 / 503 / 504 with `detail`, as for one text.")
    result: InferenceOut | None = None
    detail: str | None = None


class InferenceBatchOut(BaseModel):
    results: list[InferenceItemOut] = Field(description="In the order of the items.")


class ExperimentIn(_Body):
    """`PUT /experiments/{name}`: the experiment without its name (the path gives it)."""

    arms: list[Arm] = Field(min_length=1)
    mode: Literal["fixed", "bandit"] = "fixed"
    description: str = ""


class FeedbackIn(_Body):
    inference_id: UUID
    feedback: Probability = Field(description="A score in [0, 1]; scores accumulate per id.")


class FeedbackAccepted(BaseModel):
    inference_id: UUID
    feedback_id: UUID
    status: str = "accepted"


class Problem(BaseModel):
    detail: str
    inference_id: UUID | None = None
