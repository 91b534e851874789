"""Every Kafka topic and message schema in driftline, in one place.

The gateway, the flows, the lake writer and the tests all import from here, so a topic name or a
JSON field is spelled once. Messages are JSON (orjson) and carry their own event time,
`created_at` (UTC, microseconds). Messages about one inference are keyed by `inference_id`, so a
result and its feedback land in the same partition; monitoring topics are keyed by model.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from driftline.clock import utc_now
from driftline.settings import KafkaSettings


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (UTC)")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Message(BaseModel):
    """Base of every message: strict about unknown fields, immutable, JSON via orjson."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))


M = TypeVar("M", bound=Message)


def decode(schema: type[M], raw: bytes | str | None) -> M:
    """Parse one message; raises `ValueError` with a readable reason when it is not valid."""
    if raw is None:
        raise ValueError("message has no value")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    return schema.model_validate(obj)


class ModelRef(Message):
    """A registered MLflow model version."""

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)

    @property
    def key(self) -> str:
        """`name/version`: how a model version is keyed on topics, in state and in logs.

        >>> ModelRef(name="sentiment", version="3").key
        'sentiment/3'
        """
        return f"{self.name}/{self.version}"


class InferenceRequest(Message):
    """`inference.requests`: one text to score, published by the gateway."""

    inference_id: UUID
    created_at: UtcDatetime
    data: str = Field(min_length=1)
    subject: str | None = None
    """Sticky key for A/B assignment (a user id); the inference id when absent."""
    log_to_lakehouse: bool = True
    probe: bool = False
    """Readiness probes are scored but never logged or monitored."""
    experiment: str | None = None
    """The A/B experiment to route through; the default experiment when absent."""
    models: list[ModelRef] | None = None
    """Explicit candidates (as the reference API allows); one is picked per request."""


class InferenceResult(Message):
    """`inference.results`: the score, or the reason there is none."""

    inference_id: UUID
    created_at: UtcDatetime
    data: str
    subject: str | None = None
    log_to_lakehouse: bool = True
    probe: bool = False
    model: ModelRef | None = None
    experiment: str | None = None
    arm: str | None = None
    prediction: Probability | None = None
    """P(y=1) from the model."""
    label: int | None = None
    threshold: float = 0.5
    scored_at: UtcDatetime
    error: str | None = None
    """Set instead of a prediction when the request was valid but could not be scored."""
    shadow_of: UUID | None = None
    """Set on a shadow arm's result: the inference it shadows, whose answer went to the caller
    (`driftline.ab.shadow`). Nobody waits for a shadow result and no feedback reaches it."""


class Feedback(Message):
    """`inference.feedback`: one feedback score for an inference; scores accumulate."""

    feedback_id: UUID
    """Unique per PATCH, so a re-delivered message is counted once."""
    inference_id: UUID
    feedback: Probability
    created_at: UtcDatetime


class Labeled(Message):
    """`inference.labeled`: an inference joined with all its feedback so far.

    Emitted by the feedback flow each time feedback arrives for a known inference.
    """

    inference_id: UUID
    created_at: UtcDatetime
    """Event time of the inference (not of the feedback)."""
    experiment: str | None = None
    arm: str | None = None
    model: ModelRef
    prediction: Probability
    label: int
    feedback: list[Probability]
    feedback_mean: Probability
    updated_at: UtcDatetime
    """Event time of the latest feedback."""


class FeedbackStats(Message):
    n: int
    """Inferences in the window with at least one feedback score."""
    brier: float | None = None
    accuracy: float | None = None
    f1: float | None = None


class EstimatedPerformance(Message):
    """CBPE: expected confusion matrix from calibrated probabilities (NannyML's definition)."""

    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None


class DriftReport(Message):
    """`monitoring.drift`: one emission of one model version's sliding window."""

    model: ModelRef
    window_start: UtcDatetime
    window_end: UtcDatetime
    emitted_at: UtcDatetime
    n: int
    """Inferences in the window."""
    share: float | None = None
    """This model's share of all inferences in the window."""
    ks_d: float | None = None
    ks_p_value: float | None = None
    domain_auc: float | None = None
    domain_auc_threshold: float | None = None
    feature_drift: bool | None = None
    mmd: float | None = None
    """Squared MMD (Gaussian kernel, random Fourier features) of the window's feature rows
    against the reference sample."""
    mmd_threshold: float | None = None
    """One-sided 95% null level of `mmd` for a window of `n` events."""
    mmd_drift: bool | None = None
    """`mmd` is above `mmd_threshold`."""
    estimated: EstimatedPerformance
    reference_f1: float | None = None
    """F1 on the model's held-out reference rows: what `estimated.f1` is compared with."""
    feedback: FeedbackStats
    contradiction: bool = False
    """Feedback-based F1 differs from the CBPE estimate beyond tolerance."""


class ArmStats(Message):
    arm: str
    model: ModelRef | None = None
    traffic: int
    share: float | None = None
    feedback_count: int = 0
    mean_feedback: float | None = None
    accuracy: float | None = None
    brier: float | None = None
    mean_reward: float | None = None
    """Mean `reward` (agreement of the predicted label with each feedback score)."""
    posterior: tuple[float, float] | None = None
    """Beta(alpha, beta) of the mean reward from a uniform prior: what a bandit draws from."""


class ShadowStats(Message):
    """A shadow arm against the arms that answered the same inferences (`driftline.ab.shadow`)."""

    arm: str
    model: ModelRef | None = None
    scored: int = 0
    """Shadow results (the shadow's traffic, never counted as the experiment's)."""
    paired: int = 0
    """Shadow results whose answered inference is known: what `agreement` is over."""
    agreement: float | None = None
    """Share of paired inferences where the shadow's label equals the answered label."""
    feedback_count: int = 0
    """Feedback scores on paired inferences: what the rewards are over."""
    mean_reward: float | None = None
    """Mean `reward` of the shadow's label against the feedback on the answered inference."""
    answered_mean_reward: float | None = None
    """Mean `reward` of the answered label against the same feedback scores."""
    reward_difference: float | None = None
    """`mean_reward` - `answered_mean_reward`: above 0, the shadow would have done better."""


class SequentialTest(Message):
    arm_a: str
    arm_b: str
    p_value: float | None = None
    difference: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None
    decision: str
    """keep_running | <arm> better | no_detectable_difference"""


class ABReport(Message):
    """`monitoring.ab`: per-experiment, per-arm results with an always-valid test."""

    experiment: str
    emitted_at: UtcDatetime
    """The newest event time the report covers."""
    updates: int = 0
    """How many changes (results, feedback, shadow pairings) the report adds up. With the
    experiment and `emitted_at` it names the report: a replay after a crash re-emits the same
    name, and a report that adds changes with older event times (one topic read later than the
    other) gets a name of its own instead of being taken for the one before."""
    arms: list[ArmStats]
    test: SequentialTest | None = None
    shadows: list[ShadowStats] = []
    """One per shadow arm that scored something; empty without shadow arms."""


class Alert(Message):
    """`monitoring.alerts`: a statistic crossed its threshold, or a change was detected."""

    alert_id: str
    """Deterministic (model, metric, window), so a re-emitted alert is stored once."""
    model: ModelRef
    metric: str
    value: float
    threshold: float | None = None
    window_end: UtcDatetime
    message: str
    created_at: UtcDatetime


# --- retraining on drift (issue 13, part 3) ---
class RetrainRequest(Message):
    """`retrain.requests`: an alert asks for a model to be retrained (`driftline retrain`).

    Published by the monitor flow where the alert is (`driftline.monitoring.retraining`)."""

    request_id: str
    """Deterministic (model, alert), so a replayed alert asks once: the job trains once."""
    model: ModelRef
    """The alerting model version; the retrained one is a new version of the same name."""
    alert_id: str
    metric: str
    window_end: UtcDatetime
    """Event time of the alerting window."""
    requested_at: UtcDatetime


# --- Rollouts (issue 13, part 2): a ramp's decisions and the commands a person gives it. ---

RolloutKind = Literal["advance", "complete", "rollback", "pause", "resume", "abort"]
RolloutStatus = Literal["running", "paused", "completed", "rolled_back", "aborted"]


class RolloutDecision(Message):
    """`monitoring.rollout`: one step of a rollout (`driftline.ab.rollout`), keyed by experiment."""

    decision_id: str
    """Digest of (experiment, rollout id, sequence number, kind, step): a replay re-derives it,
    so the lake stores each decision once."""
    experiment: str
    rollout_id: str
    seq: int
    """Decisions of this rollout before this one."""
    kind: RolloutKind
    status: RolloutStatus
    """The rollout's status after this decision."""
    step: int
    """Index into the declared steps after this decision."""
    challenger: str
    champion: str
    challenger_share: float
    """The challenger's share of the two arms' traffic after this decision (0: it is a shadow)."""
    model: ModelRef | None = None
    """The challenger's model version, once a report or its pinned arm has named it."""
    ci_lower: float | None = None
    ci_upper: float | None = None
    """Confidence sequence of challenger - champion reward when the decision was taken."""
    feedback_count: int = 0
    """Feedback scores on the challenger when the decision was taken."""
    reason: str
    created_at: UtcDatetime
    """Event time of the report, alert or command that caused it."""


class RolloutCommand(Message):
    """`monitoring.rollout.commands`: a person pauses, resumes or aborts a rollout."""

    command_id: UUID
    experiment: str
    action: Literal["pause", "resume", "abort"]
    created_at: UtcDatetime


# --- end of rollouts ---


class DeadLetter(Message):
    """`deadletter`: a message a flow could not use, with the reason and the original bytes."""

    flow: str
    reason: str
    source_topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    payload_b64: str
    """The original value, base64 encoded (it may not be text)."""
    failed_at: UtcDatetime

    @classmethod
    def of(
        cls,
        flow: str,
        reason: str,
        payload: bytes | None,
        *,
        source_topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        key: bytes | None = None,
    ) -> DeadLetter:
        return cls(
            flow=flow,
            reason=reason,
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            key=key.decode("utf-8", "replace") if key is not None else None,
            payload_b64=base64.b64encode(payload or b"").decode("ascii"),
            failed_at=utc_now(),
        )

    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)


@dataclass(frozen=True)
class Topic:
    """A topic's base name, the schema of its values, and what its messages are keyed by."""

    base: str
    schema: type[Message]
    key: str

    def name(self, kafka: KafkaSettings) -> str:
        return kafka.topic_prefix + self.base


REQUESTS = Topic("inference.requests", InferenceRequest, key="inference_id")
RESULTS = Topic("inference.results", InferenceResult, key="inference_id")
FEEDBACK = Topic("inference.feedback", Feedback, key="inference_id")
LABELED = Topic("inference.labeled", Labeled, key="inference_id")
DRIFT = Topic("monitoring.drift", DriftReport, key="model")
AB = Topic("monitoring.ab", ABReport, key="experiment")
ALERTS = Topic("monitoring.alerts", Alert, key="model")
DEADLETTER = Topic("deadletter", DeadLetter, key="source_topic")
RETRAIN_REQUESTS = Topic("retrain.requests", RetrainRequest, key="model")
ROLLOUT = Topic("monitoring.rollout", RolloutDecision, key="experiment")
ROLLOUT_COMMANDS = Topic("monitoring.rollout.commands", RolloutCommand, key="experiment")

ALL_TOPICS: tuple[Topic, ...] = (
    REQUESTS,
    RESULTS,
    FEEDBACK,
    LABELED,
    DRIFT,
    AB,
    ALERTS,
    DEADLETTER,
    RETRAIN_REQUESTS,
    ROLLOUT,
    ROLLOUT_COMMANDS,
)


def message_key(topic: Topic, message: Message) -> bytes:
    """The Kafka key of `message` on `topic`, as bytes (a model is keyed as `name/version`)."""
    value: Any = getattr(message, topic.key)
    return (value.key if isinstance(value, ModelRef) else str(value)).encode()
