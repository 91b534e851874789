"""The feedback join against a brute-force join, on a stream with out-of-order, duplicated,
early and late feedback, with a snapshot/restore in the middle (as after a `kill -9`)."""

from __future__ import annotations

import pickle
import random
import uuid
from collections import defaultdict

import pytest

from driftline.shards import SHARDS, shard_of
from driftline.topics import DEADLETTER, LABELED, Feedback, decode
from flows.feedback import Answered, InferenceJoin, JoinShard, joinable, labeled_of
from flows.wiring import Outgoing, Parsed
from tests.factories import make_feedback, make_result

TTL = 100.0


class Joiner:
    """Drives one `JoinShard` per key as Bytewax does (`flows.feedback.JoinLogic`), with
    `shards` keys, sweeping each at its `wake_at`."""

    def __init__(self, shards: int) -> None:
        self.shards = shards
        self.keys: dict[int, JoinShard] = {}

    def advance(self, now: float) -> list[Outgoing]:
        out = []
        for key, shard in list(self.keys.items()):
            wake_at = shard.wake_at()
            if wake_at is not None and wake_at <= now:
                out += shard.expire(now)
                if not shard.joins:
                    del self.keys[key]
        return out

    def push(self, parsed: Parsed, now: float) -> list[Outgoing]:
        out = self.advance(now)
        key = shard_of(str(parsed.message.inference_id)) % self.shards
        return out + self.keys.setdefault(key, JoinShard(TTL)).on_item(parsed, now)

    def restart(self) -> None:
        self.keys = {
            k: JoinShard.from_state(TTL, pickle.loads(pickle.dumps(s.to_state())))
            for k, s in self.keys.items()
        }


def stream(seed: int) -> tuple[list[tuple[float, Parsed]], dict, set]:
    """Events at processing times, plus what a brute-force join says must come out."""
    rng = random.Random(seed)
    events: list[tuple[float, Parsed]] = []
    joined: dict[str, list] = defaultdict(list)  # inference id -> (first arrival, score)
    dead: set[uuid.UUID] = set()  # feedback ids that must be dead-lettered
    offset = 0

    def feedback(inference_id: uuid.UUID, at: float, kind: str) -> None:
        nonlocal offset
        fb = make_feedback(inference_id, rng.choice([0.0, 0.25, 1.0]))  # event time != arrival
        copies = 1 + (rng.random() < 0.3)  # re-delivered duplicates
        # A copy of a dead-lettered feedback that arrives after its wait expired starts a new wait
        # and is dead-lettered again (dead letters are at-least-once): keep those copies together.
        delay = 0.0 if kind == "dead" else rng.uniform(0, 2)
        for i in range(copies):
            offset += 1
            events.append((at + i * delay, Parsed(fb, "inference.feedback", 0, offset)))
        if kind == "joined":
            joined[str(inference_id)].append((at, fb.feedback))
        else:
            dead.add(fb.feedback_id)

    for _ in range(150):
        result = make_result()
        t = rng.uniform(0, 1000)
        events.append((t, Parsed(result, "inference.results", 0, 0)))
        if rng.random() < 0.2:  # the result is re-delivered
            events.append((t + rng.uniform(0, 50), Parsed(result, "inference.results", 0, 0)))
        for _ in range(rng.randint(0, 4)):
            kind = rng.choice(["early", "on_time", "on_time", "late"])
            if kind == "early":
                feedback(result.inference_id, t - rng.uniform(0.1, 0.4 * TTL), "joined")
            elif kind == "on_time":
                feedback(result.inference_id, t + rng.uniform(0.1, 0.9 * TTL), "joined")
            else:
                feedback(result.inference_id, t + rng.uniform(1.1 * TTL, 3 * TTL), "dead")
    for _ in range(40):  # feedback for ids never scored
        feedback(uuid.uuid4(), rng.uniform(0, 1000), "dead")
    events.sort(key=lambda e: e[0])
    by_arrival = {k: [score for _, score in sorted(v)] for k, v in joined.items()}
    return events, by_arrival, dead


@pytest.mark.parametrize(("seed", "shards"), [(s, [1, 7, SHARDS][s % 3]) for s in range(6)])
def test_join_matches_brute_force(seed: int, shards: int) -> None:
    events, expected_joined, expected_dead = stream(seed)
    joiner, out = Joiner(shards), []
    for i, (t, parsed) in enumerate(events):
        out += joiner.push(parsed, t)
        if i == len(events) // 2:
            joiner.restart()
    out += joiner.advance(1e9)

    last: dict[str, list[float]] = {}
    for o in out:
        if o.topic == LABELED:
            labeled = o.message
            previous = last.get(str(labeled.inference_id), [])
            assert labeled.feedback[: len(previous)] == previous  # grows by arrival, never shrinks
            assert labeled.feedback_mean == pytest.approx(
                sum(labeled.feedback) / len(labeled.feedback)
            )
            last[str(labeled.inference_id)] = labeled.feedback
    assert last == expected_joined
    dead = [decode(Feedback, o.message.payload()) for o in out if o.topic == DEADLETTER]
    assert sorted(f.feedback_id for f in dead) == sorted(expected_dead)  # each exactly once
    assert joiner.keys == {}  # memory is bounded: everything expired


def test_labeled_carries_the_result_fields() -> None:
    result = make_result(experiment="e", arm="B", prediction=0.8, label=1)
    join = InferenceJoin(TTL)
    fb = make_feedback(result.inference_id, 0.5)
    join.on_result(result, 0.0)
    (out,) = join.on_feedback(Parsed(fb, "inference.feedback", 1, 5), 1.0)
    labeled = out.message
    assert (labeled.experiment, labeled.arm, labeled.model, labeled.prediction) == (
        "e",
        "B",
        result.model,
        0.8,
    )
    assert (labeled.label, labeled.feedback, labeled.feedback_mean) == (1, [0.5], 0.5)
    assert labeled.updated_at == fb.created_at


def unpacked(join: InferenceJoin) -> dict:
    """A join's state as snapshots held it before `InferenceJoin.pack`."""
    return {"result": join.result, "feedback": tuple(join.feedback), "deadline": join.deadline}


def test_a_snapshot_holding_the_whole_result_resumes() -> None:
    """Snapshots from before `Answered` hold the `InferenceResult` itself."""
    result = make_result(experiment="e", arm="B", prediction=0.8, label=1)
    fb = make_feedback(result.inference_id, 1.0)
    old = {"result": result, "feedback": (), "deadline": TTL}
    resumed = InferenceJoin.from_state(TTL, old)
    (out,) = resumed.on_feedback(Parsed(fb, "inference.feedback", 1, 5), 1.0)
    assert out.message == labeled_of(result, [1.0], fb.created_at)
    assert resumed.result == Answered.of(result)


def test_a_snapshot_of_one_id_from_before_shards_resumes_and_expires() -> None:
    result = make_result()
    fb = make_feedback(result.inference_id, 1.0)
    join = InferenceJoin(TTL)
    join.on_result(result, 0.0)
    shard = JoinShard.from_state(TTL, unpacked(join))  # still keyed by the id
    (out,) = shard.on_item(Parsed(fb, "inference.feedback", 1, 5), 1.0)
    assert out.message == labeled_of(result, [1.0], fb.created_at)
    assert shard.wake_at() == TTL and shard.expire(TTL) == [] and shard.joins == {}


def test_a_shard_snapshot_from_before_packing_resumes_and_expires() -> None:
    """Shards snapshotted their joins unpacked ({id: join state}) before `InferenceJoin.pack`."""
    result, early = make_result(), make_result()
    join, waiting = InferenceJoin(TTL), InferenceJoin(TTL)
    join.on_result(result, 0.0)
    waiting.on_feedback(
        Parsed(make_feedback(early.inference_id, 0.0), "inference.feedback", 1, 4), 2.0
    )
    old = {str(result.inference_id): unpacked(join), str(early.inference_id): unpacked(waiting)}
    shard = JoinShard.from_state(TTL, pickle.loads(pickle.dumps(old)))
    fb = make_feedback(result.inference_id, 1.0)
    (out,) = shard.on_item(Parsed(fb, "inference.feedback", 1, 5), 1.0)
    assert out.message == labeled_of(result, [1.0], fb.created_at)
    assert shard.wake_at() == TTL and shard.expire(TTL) == []  # the result: no dead letter
    (dead,) = shard.expire(TTL + 2.0)  # the early feedback never met its result
    assert dead.topic == DEADLETTER and shard.joins == {}


def test_probes_unscored_and_shadow_results_are_not_joined() -> None:
    def parsed(**changes: object) -> Parsed:
        return Parsed(make_result().model_copy(update=changes), "inference.results", 0, 0)

    assert joinable(parsed())
    assert not joinable(parsed(probe=True))
    assert not joinable(parsed(prediction=None, label=None, model=None, error="no model"))
    assert not joinable(parsed(shadow_of=uuid.uuid4()))  # nobody sees it: no feedback comes
