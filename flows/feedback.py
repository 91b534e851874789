"""Feedback flow: joins `inference.results` with `inference.feedback` -> `inference.labeled`.

    python -m bytewax.run flows.feedback:flow

Both topics are keyed by `inference_id`, so a result and its feedback meet in one partition, and
the join is a keyed stateful step, keyed by the id's shard (`driftline.shards`: an hour of ids
as Bytewax keys would make each of its timer scans visit 720,000 keys at 200/s). Per inference
id it holds:

- the result's fields that `Labeled` carries (`Answered`, not the text), for
  `DRIFTLINE_FEEDBACK_TTL_SECONDS` after it arrived (bounded memory);
- feedback that arrives before its result, for the same time-to-live after the first one;
- the ids of the feedback counted, so a re-delivered message (same `feedback_id`) counts once.

Each time new feedback meets its result, a `Labeled` message carries all feedback so far (in
arrival order) and its mean. Feedback whose result does not arrive within the time-to-live (an
unknown id, or one whose result already expired) goes to `deadletter` with the reason.

The time-to-live runs on processing time (wall clock, so it continues across a restart): feedback
is a reaction to an answer that was just served, and event time on the feedback topic need not
advance at all when traffic is quiet. A shard forgets its expired ids in sweeps, at whole
seconds (`SWEEP_SECONDS`), so all shards wake at the same times. Readiness probes and
results without a prediction are ignored, and so are shadow arms' results: nobody sees them, so
no feedback comes for them.
State is snapshotted by Bytewax recovery, so after a `kill -9` a replayed feedback message is
recognised by its id and nothing is counted twice.
"""

from __future__ import annotations

import logging
import math
import pickle
import sys
from datetime import datetime
from typing import Any, NamedTuple, Self
from uuid import UUID

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic

from driftline.clock import Clock, as_utc, wall_clock
from driftline.settings import Settings
from driftline.shards import shard_of
from driftline.topics import (
    FEEDBACK,
    LABELED,
    RESULTS,
    DeadLetter,
    Feedback,
    InferenceResult,
    Labeled,
    ModelRef,
)
from flows.wiring import Outgoing, Parsed, configured, consume, publish_all, settled, to_deadletter

log = logging.getLogger(__name__)

EXPIRED = "no result for this inference id within the feedback time-to-live (unknown or expired)"


class InferenceJoin:
    """The join state of one inference id; pure, driven by processing times in seconds (an
    example with `JoinShard`)."""

    __slots__ = ("deadline", "feedback", "result", "ttl")  # one per id held: 120 bytes less

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.result: Answered | None = None
        self.feedback: list[Parsed[Feedback]] = []
        self.deadline: float | None = None

    def on_result(self, result: InferenceResult, now: float) -> list[Outgoing]:
        """Keep the first copy of the result; feedback held for it is joined now."""
        if self.result is not None:
            return []
        self.result = Answered.of(result)
        self.deadline = now + self.ttl
        return [self._labeled()] if self.feedback else []

    def on_feedback(self, parsed: Parsed[Feedback], now: float) -> list[Outgoing]:
        """Count a feedback id once; emit the joined row when the result is known."""
        if any(p.message.feedback_id == parsed.message.feedback_id for p in self.feedback):
            return []
        self.feedback.append(parsed)
        if self.deadline is None:
            self.deadline = now + self.ttl
        return [self._labeled()] if self.result is not None else []

    def expire(self, now: float) -> list[Outgoing]:
        """At the deadline: dead letters for feedback that never met a result. Then discard."""
        if self.deadline is None or now < self.deadline or self.result is not None:
            return []
        return [to_deadletter(_dead(p)) for p in self.feedback]

    def _labeled(self) -> Outgoing:
        assert self.result is not None
        scores = [p.message.feedback for p in self.feedback]
        updated_at = max(p.message.created_at for p in self.feedback)
        return Outgoing(LABELED, self.result.labeled(scores, updated_at))

    def pack(self) -> bytes:
        """The join as one bytes object, for `JoinShard`: builtins only, without the id (the
        shard's key for it), the time as ISO text (a pickled datetime names its classes in
        each object: a snapshot took 260 bytes an id so, 170 now)."""
        result = None
        if self.result is not None:
            _, created_at, *rest = self.result
            result = (created_at.isoformat(), *rest)
        return pickle.dumps((result, tuple(self.feedback), self.deadline))

    @classmethod
    def unpack(cls, ttl: float, inference_id: str, packed: bytes) -> Self:
        join = cls(ttl)
        result, feedback, join.deadline = pickle.loads(packed)
        if result is not None:
            created_at, *rest = result
            join.result = Answered(inference_id, datetime.fromisoformat(created_at), *rest)
        join.feedback = list(feedback)
        return join

    @classmethod
    def from_state(cls, ttl: float, state: dict[str, Any] | None) -> Self:
        """A join as snapshots held it before `pack`: {"result", "feedback", "deadline"}."""
        join = cls(ttl)
        if state is not None:
            join.result, join.deadline = state["result"], state["deadline"]
            if isinstance(join.result, InferenceResult):  # a snapshot from before `Answered`
                join.result = Answered.of(join.result)
            join.feedback = list(state["feedback"])
        return join


SWEEP_SECONDS = 1
"""Expired ids are forgotten at the next multiple of this: the shards' timers coincide, and the
step wakes for them at most once per sweep, not once per id. Sweeping rarer would gather more
expiries per sweep, and every shard a sweep touches is snapshotted whole in that epoch."""


class JoinShard:
    """The joins of the inference ids of one shard, with one timer: the next sweep due.

    >>> from driftline.clock import utc_now
    >>> import uuid
    >>> fb = Feedback(
    ...     feedback_id=uuid.uuid4(), inference_id=uuid.uuid4(), feedback=1.0, created_at=utc_now()
    ... )
    >>> shard = JoinShard(ttl=60.0)
    >>> shard.on_item(Parsed(fb, "inference.feedback", 0, 7), now=30.5)   # early: held
    []
    >>> shard.wake_at()   # its deadline, 90.5 s, rounded up to a sweep
    91.0
    >>> [o.message.reason[:9] for o in shard.expire(now=91.0)], shard.joins
    (['no result'], {})
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.joins: dict[str, tuple[float, bytes]] = {}
        """Each id's join as (deadline, `InferenceJoin.pack()`). Bytewax snapshots a shard whole
        in each epoch that touched it, and an hour of ids at 500/s is ~110 a shard: packed, a
        snapshot costs ~0.2 us an id instead of ~4.3 (objects), and an id held ~340 bytes
        instead of ~450. A message unpacks and packs its own id's join (~10 us)."""
        self._earliest: float | None = None
        """The earliest deadline of the joins held."""

    def on_item(self, parsed: Parsed, now: float) -> list[Outgoing]:
        message = parsed.message
        key = str(message.inference_id)
        held = self.joins.get(key)
        if held is None:
            join = InferenceJoin(self.ttl)
        else:
            join = InferenceJoin.unpack(self.ttl, key, held[1])
        held_until = join.deadline
        if isinstance(message, InferenceResult):
            out = join.on_result(message, now)
        else:
            out = join.on_feedback(parsed, now)
        assert join.deadline is not None  # set by an id's first message, then only later
        self.joins[key] = (join.deadline, join.pack())
        if join.deadline != held_until:  # a new id, or a result after its early feedback
            if held_until == self._earliest:
                self._find_earliest()
            elif self._earliest is None or join.deadline < self._earliest:
                self._earliest = join.deadline
        return out

    def expire(self, now: float) -> list[Outgoing]:
        """Forget every expired id; dead letters for the feedback that never met its result."""
        out = []
        for key in [k for k, (deadline, _) in self.joins.items() if now >= deadline]:
            out += InferenceJoin.unpack(self.ttl, key, self.joins.pop(key)[1]).expire(now)
        self._find_earliest()
        return out

    def _find_earliest(self) -> None:
        self._earliest = min((deadline for deadline, _ in self.joins.values()), default=None)

    def wake_at(self) -> float | None:
        """The first sweep at or after the earliest deadline held."""
        if self._earliest is None:
            return None
        return float(math.ceil(self._earliest / SWEEP_SECONDS) * SWEEP_SECONDS)

    def to_state(self) -> dict[str, Any]:
        return {"packed": dict(self.joins)}

    @classmethod
    def from_state(cls, ttl: float, state: dict[str, Any] | None) -> Self:
        shard = cls(ttl)
        if state is not None and "packed" in state:
            shard.joins = dict(state["packed"])
        else:  # a snapshot from before packing: {id: join state}, or one id's join
            if state is not None and "deadline" in state:  # keyed by the id (before shards):
                join = InferenceJoin.from_state(ttl, state)  # it expires on its old key
                state = {_id_of(join): state}
            for key, join_state in (state or {}).items():
                join = InferenceJoin.from_state(ttl, join_state)
                assert join.deadline is not None  # every join held has had a message
                shard.joins[key] = (join.deadline, join.pack())
        shard._find_earliest()
        return shard


def _id_of(join: InferenceJoin) -> str:
    if join.result is not None:
        return join.result.inference_id
    return str(join.feedback[0].message.inference_id)


class Answered(NamedTuple):
    """What the join keeps of a scored result for the time-to-live: what `Labeled` carries,
    not the text, as builtins. Against the whole `InferenceResult`: 226 bytes pickled instead
    of 695, 5.5 us instead of 12.9, and the flow grew 1.3 KB per held id instead of 3.2 (30 s
    of the e2e batch load: +117 MiB for 92,500 results, against +266 MiB for 85,000). Model
    names, versions, experiments and arms are interned: 298 bytes in memory instead of 571."""

    inference_id: str
    created_at: datetime
    model: str
    version: str
    prediction: float
    label: int
    experiment: str | None
    arm: str | None

    @classmethod
    def of(cls, result: InferenceResult) -> Answered:
        assert result.model is not None and result.prediction is not None
        label = result.label if result.label is not None else 0
        return cls(
            str(result.inference_id),
            result.created_at,
            sys.intern(result.model.name),  # the few names, versions and arms there are, once
            sys.intern(result.model.version),
            result.prediction,
            label,
            None if result.experiment is None else sys.intern(result.experiment),
            None if result.arm is None else sys.intern(result.arm),
        )

    def labeled(self, scores: list[float], updated_at: datetime) -> Labeled:
        """Joined with its feedback scores (oldest first)."""
        return Labeled(
            inference_id=UUID(self.inference_id),
            created_at=self.created_at,
            experiment=self.experiment,
            arm=self.arm,
            model=ModelRef(name=self.model, version=self.version),
            prediction=self.prediction,
            label=self.label,
            feedback=scores,
            feedback_mean=min(1.0, max(0.0, sum(scores) / len(scores))),
            updated_at=updated_at,
        )


def labeled_of(result: InferenceResult, scores: list[float], updated_at: datetime) -> Labeled:
    """A scored result joined with its feedback scores (oldest first)."""
    return Answered.of(result).labeled(scores, updated_at)


def _dead(parsed: Parsed[Feedback]) -> DeadLetter:
    return DeadLetter.of(
        "feedback",
        EXPIRED,
        parsed.message.to_json(),
        source_topic=parsed.topic,
        partition=parsed.partition,
        offset=parsed.offset,
        key=str(parsed.message.inference_id).encode(),
    )


class JoinLogic(StatefulLogic[Parsed, Outgoing, dict[str, Any]]):
    """Thin Bytewax wrapper of one shard: the clock's now, a timer at its next sweep, snapshot
    of the state."""

    def __init__(
        self, ttl: float, resume: dict[str, Any] | None, clock: Clock = wall_clock
    ) -> None:
        self.shard = JoinShard.from_state(ttl, resume)
        self.clock = clock

    def on_item(self, value: Parsed) -> tuple[list[Outgoing], bool]:
        return self.shard.on_item(value, self.clock()), StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[Outgoing], bool]:
        out = self.shard.expire(self.clock())
        if out:
            log.info("feedback expired", extra={"count": len(out)})
        return out, StatefulLogic.RETAIN if self.shard.joins else StatefulLogic.DISCARD

    def notify_at(self) -> datetime | None:
        wake_at = self.shard.wake_at()
        return None if wake_at is None else as_utc(wake_at)

    def snapshot(self) -> dict[str, Any]:
        return self.shard.to_state()


def joinable(parsed: Parsed) -> bool:
    """Feedback always; results only when scored and not a readiness probe, nor a shadow's
    (feedback is given on the answered inference; `flows.ab` pairs the shadow with it)."""
    message = parsed.message
    if isinstance(message, InferenceResult):
        scored = message.prediction is not None and message.model is not None
        return scored and not message.probe and message.shadow_of is None
    return True


def build(settings: Settings) -> Dataflow:
    flow = Dataflow("feedback")
    parsed, dead = consume(flow, settings, [RESULTS, FEEDBACK])
    keyed = op.key_on(
        "key",
        op.filter("joinable", parsed, joinable),
        lambda p: str(shard_of(str(p.message.inference_id))),
    )
    ttl = settings.feedback.ttl_seconds
    joined = op.stateful("join", keyed, lambda resume: JoinLogic(ttl, resume))
    publish_all(op.map("unkey", joined, lambda kv: kv[1]), dead, settings)
    return flow


def flow() -> Dataflow:
    """The feedback join with the configured settings
    (`python -m bytewax.run flows.feedback:flow`)."""
    return settled(build(configured()))
