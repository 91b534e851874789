"""The gateway's HTTP bodies. Unknown fields are rejected (422) so a typo never goes unseen.

Types are as strict as the OpenAPI document says: a number field takes a JSON number (an integer
too) but not `true`, a boolean takes `true`/`false` only, and a time is an RFC 3339 string with
its offset, never a bare number.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from driftline.ab import RolloutSpec
from driftline.clock import utc_now
from driftline.topics import InferenceResult, ModelRef, Probability, RolloutDecision

FUTURE_SKEW = timedelta(minutes=1)
"""Clock skew tolerated between a client's `created_at` and the gateway's clock."""


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?(?P<offset>[Zz]|[+-]\d{2}:\d{2})?"
)


def _rfc3339(value: Any) -> Any:
    """Only an RFC 3339 date-time string, as the schema says (pydantic alone would also take
    a number, or a numeric string, as Unix time)."""
    if isinstance(value, datetime):
        return value
    found = _RFC3339.fullmatch(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError("must be an RFC 3339 date-time string, e.g. 2026-01-01T00:00:00Z")
    if found["offset"] is None:
        raise ValueError("timestamp must carry a timezone (UTC)")
    return value


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""No event time before the Unix epoch, where Kafka's timestamps start."""


def _in_range(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)  # year 1 at +01:00 is before year 1 in UTC: overflow
    except OverflowError:
        raise ValueError("created_at is out of range") from None
    if utc < EARLIEST:
        raise ValueError("created_at is before 1970-01-01T00:00:00Z")
    return utc


EventTime = Annotated[datetime, BeforeValidator(_rfc3339), AfterValidator(_in_range)]
StrictProbability = Annotated[Probability, Field(strict=True)]
"""A number in [0, 1]: an integer is one, `false` is not."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        """JSON may escape a lone surrogate (`"\\ud800"`): no valid text, and no message could
        carry it on. Refused here (422) rather than failing later."""
        _check_unicode(data)
        return data


def _check_unicode(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(f"text is not valid Unicode: {exc.reason}") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_unicode(key)
            _check_unicode(item)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item)


class InferenceIn(_Body):
    data: str = Field(min_length=1, max_length=100_000, description="The text to classify.")
    subject: str | None = Field(
        None, max_length=512, description="Sticky key (e.g. a user id) for A/B assignment."
    )
    log_to_lakehouse: StrictBool = Field(True, description="Store the inference in the lake.")
    experiment: str | None = Field(
        None, description="A/B experiment to route through; the default experiment when absent."
    )
    models: list[ModelRef] | None = Field(
        None, min_length=1, description="Explicit candidates; one is picked per subject."
    )
    created_at: EventTime | None = Field(
        None,
        description="Event time, for backfills and simulations (timezone required, not in the "
        "future, not before 1970); the time of the request when absent. Monitoring windows use it.",
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
    status: int = Field(description="200, or 404 / 422 / 503 / 504 with `detail`, as for one text.")
    result: InferenceOut | None = None
    detail: str | None = None


class InferenceBatchOut(BaseModel):
    results: list[InferenceItemOut] = Field(description="In the order of the items.")


class _ArmIn(_Body):
    name: str = Field(min_length=1, description="Unique within the experiment.")
    model: str = Field(min_length=1, description="Registered model name.")
    weight: float = Field(
        1.0,
        gt=0,
        allow_inf_nan=False,
        strict=True,
        description="Relative share of traffic (ignored for a shadow arm).",
    )
    shadow: StrictBool = Field(
        False,
        description="A shadow arm scores the experiment's requests and never answers them; "
        "at least one arm must not be a shadow.",
    )
    shadow_sample: float = Field(
        1.0,
        ge=0,
        le=1,
        strict=True,
        description="Share of requests a shadow arm scores (shadow arms only).",
    )


class AliasArmIn(_ArmIn):
    """An arm that follows a registry alias (`champion`)."""

    alias: str = Field(min_length=1)


class VersionArmIn(_ArmIn):
    """An arm pinned to one registered version."""

    version: str = Field(min_length=1)


class RolloutIn(_Body):
    """A ramp of the `challenger` arm against the `champion` arm (`driftline.ab.rollout`): its
    share of their traffic goes through `steps` while the sequential test says it is not worse
    by more than `margin`; it is rolled back at once when an alert names its model or the test
    shows it worse, and at the last step (1) the registry alias `champion` moves to it. Steps
    must rise strictly and end at 1; both arms must exist; mode must be `fixed` (422 if not)."""

    challenger: str = Field(min_length=1, description="The arm that is ramped up.")
    champion: str = Field(min_length=1, description="The arm it takes traffic from.")
    steps: list[Annotated[float, Field(gt=0, le=1, strict=True)]] = Field(
        [0.05, 0.25, 0.5, 1.0], min_length=1, description="Challenger shares, rising, ending at 1."
    )
    margin: float = Field(
        0.02, gt=0, lt=1, strict=True, description="Non-inferiority margin in reward units."
    )
    min_feedback: int = Field(
        30, ge=1, strict=True, description="New feedback scores on the challenger per step."
    )


class RolloutOut(BaseModel):
    """`GET /experiments/{name}/rollout`: the declared ramp, where it stands, its decisions."""

    experiment: str
    rollout: RolloutSpec
    status: str
    step: int
    challenger_share: float
    decisions: list[RolloutDecision]


class ExperimentIn(_Body):
    """`PUT /experiments/{name}`: the experiment without its name (the path gives it). Each arm
    names its model by alias or by version, never both; arm names must differ, and one arm at
    least must not be a shadow (422 if not)."""

    arms: list[AliasArmIn | VersionArmIn] = Field(min_length=1)
    mode: Literal["fixed", "bandit"] = "fixed"
    description: str = ""
    rollout: RolloutIn | None = Field(
        None,
        description="Ramp a challenger (`RolloutIn`); each PUT starts it over at its first step.",
    )


class FeedbackIn(_Body):
    inference_id: UUID
    feedback: StrictProbability = Field(description="A score in [0, 1]; scores accumulate per id.")


class FeedbackAccepted(BaseModel):
    inference_id: UUID
    feedback_id: UUID
    status: str = "accepted"


class ValidationIssue(BaseModel):
    """One reason a request was refused: where (`["body", "feedback"]`), what and its kind."""

    loc: list[str | int]
    msg: str
    type: str


class Problem(BaseModel):
    """Every error answer: the reason, and what identifies the request."""

    detail: str = Field(description="Why the request failed, readable.")
    inference_id: UUID | None = Field(None, description="The inference concerned, if any.")
    request_id: str | None = Field(
        None, description="This request's id (also the X-Request-ID header): quote it."
    )
    errors: Annotated[
        list[ValidationIssue] | None,
        Field(description="422 only: each validation error of the request."),
    ] = None
