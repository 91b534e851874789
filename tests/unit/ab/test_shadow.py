"""Shadow arms in the A/B report: paired with the answered inference whatever the order of the
messages, checked against a plain recomputation, and never counted as the experiment's traffic."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import timedelta

import pytest

from driftline.ab.ledger import SHARDS, IdLedger
from driftline.ab.report import ExperimentStats
from driftline.ab.shadow import shadow_id
from driftline.topics import InferenceResult, Labeled
from flows.feedback import labeled_of
from tests.ab_path import ABPath
from tests.factories import make_result

SHADOWS = ("S", "T")


def shadow_of(answered: InferenceResult, arm: str, prediction: float) -> InferenceResult:
    return make_result(
        inference_id=shadow_id(answered.inference_id, arm),
        created_at=answered.created_at,
        experiment=answered.experiment,
        arm=arm,
        prediction=prediction,
        shadow_of=answered.inference_id,
    )


def traffic(seed: int, n: int = 300) -> tuple[list, list, dict]:
    """Answered results (arms A, B), shadow results (S on all, T on about half), feedback per
    answered id, and every message in a shuffled order: a shadow may come before its answered
    result, feedback before either; some messages come twice."""
    rng = random.Random(seed)
    answered, shadows, feedback = [], [], defaultdict(list)
    per_id: list[list] = []
    for _ in range(n):
        result = make_result(experiment="exp", arm=rng.choice("AAB"), prediction=rng.random())
        answered.append(result)
        mine = [shadow_of(result, "S", rng.random())]
        if rng.random() < 0.5:
            mine.append(shadow_of(result, "T", rng.random()))
        shadows += mine
        labeled: list[Labeled] = []
        for _ in range(rng.choice([0, 0, 1, 2, 3])):
            feedback[result.inference_id].append(rng.choice([0.0, 0.25, 1.0]))
            scores = list(feedback[result.inference_id])
            labeled.append(labeled_of(result, scores, result.created_at))
        per_id.append([result, *mine, *labeled])
    # Interleave the ids; within one id the labeled messages keep their order (one partition).
    stream: list = []
    for messages in per_id:
        rng.shuffle(messages)
        labeled_in_order = iter(sorted((m for m in messages if isinstance(m, Labeled)), key=len_fb))
        messages = [next(labeled_in_order) if isinstance(m, Labeled) else m for m in messages]
        stream.append(messages)
    flat = []
    while any(stream):
        messages = rng.choice([m for m in stream if m])
        message = messages.pop(0)
        flat.append(message)
        if rng.random() < 0.2:
            flat.append(message)  # re-delivered
    return answered, shadows, {"feedback": feedback, "stream": flat}


def len_fb(labeled: Labeled) -> int:
    return len(labeled.feedback)


def feed(stats: ABPath, stream: list) -> ABPath:
    for i, message in enumerate(stream):
        stats.feed(message)
        if i % 97 == 0:  # a snapshot and a restore now and then
            stats = stats.restarted()
    return stats


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shadow_statistics_match_a_plain_recomputation(seed: int) -> None:
    answered, shadows, data = traffic(seed)
    stats = feed(ABPath(shards=seed * 8 or SHARDS), data["stream"])
    feedback = data["feedback"]
    label_of = {r.inference_id: r.label for r in answered}
    report = stats.report()
    got = {s.arm: s for s in report.shadows}
    assert set(got) == set(SHADOWS)
    for arm in SHADOWS:
        mine = [s for s in shadows if s.arm == arm]
        agree = [s.label == label_of[s.shadow_of] for s in mine]
        shadow_rewards, answered_rewards = [], []
        for s in mine:
            for f in feedback[s.shadow_of]:
                shadow_rewards.append(1 - abs(s.label - f))
                answered_rewards.append(1 - abs(label_of[s.shadow_of] - f))
        # The brief's definition for a binary label: f if the labels agree, else 1 - f, where f
        # is the answered label's reward. It is the same number.
        implied = [
            a if s.label == label_of[s.shadow_of] else 1 - a
            for s in mine
            for a in (1 - abs(label_of[s.shadow_of] - f) for f in feedback[s.shadow_of])
        ]
        assert implied == pytest.approx(shadow_rewards)
        s = got[arm]
        assert (s.scored, s.paired) == (len(mine), len(mine))
        assert s.agreement == pytest.approx(sum(agree) / len(agree))
        assert s.feedback_count == len(shadow_rewards)
        assert s.mean_reward == pytest.approx(sum(shadow_rewards) / len(shadow_rewards))
        mean_answered = sum(answered_rewards) / len(answered_rewards)
        assert s.answered_mean_reward == pytest.approx(mean_answered)
        assert s.reward_difference == pytest.approx(s.mean_reward - s.answered_mean_reward)
        assert s.model == mine[-1].model


def test_shadow_results_never_count_as_the_experiments_traffic_feedback_or_test() -> None:
    _, _, data = traffic(7)
    with_shadows = feed(ABPath(), data["stream"]).report()
    without = [m for m in data["stream"] if not getattr(m, "shadow_of", None)]
    plain = feed(ABPath(), without).report()
    assert with_shadows.arms == plain.arms
    assert with_shadows.test == plain.test
    assert {a.arm for a in with_shadows.arms} == {"A", "B"}
    assert plain.shadows == []


def test_a_shadow_without_its_answered_inference_is_scored_but_not_paired() -> None:
    lost = make_result(experiment="exp", arm="A", prediction=0.9)
    stats = ABPath().feed(shadow_of(lost, "S", 0.1))
    (s,) = stats.report().shadows
    assert (s.scored, s.paired, s.agreement, s.mean_reward) == (1, 0, None, None)
    assert stats.report().arms == []


def test_ids_and_their_shadows_are_forgotten_after_the_horizon() -> None:
    ledger = IdLedger(horizon=60.0)
    first = make_result(experiment="exp", arm="A")
    ledger.on_result(first)
    ledger.on_result(shadow_of(first, "S", 0.9))
    for i in range(200):  # one a second, from past the horizon on
        later = first.created_at + timedelta(seconds=61 + i)
        ledger.on_result(make_result(experiment="exp", arm="A", created_at=later))
    assert str(first.inference_id) not in ledger.seen
    assert str(first.inference_id) not in ledger.shadows
    assert len(ledger.seen) <= 60 + 60 / 16 + 1  # swept at least every 1/16 of the horizon


def test_a_snapshot_from_before_the_ledgers_keeps_its_sums() -> None:
    """The report step's state then held every id too (and, earlier still, no shadows): the
    sums resume, the ids are dropped."""
    result = make_result(experiment="exp", arm="A")
    path = ABPath().feed(result).feed(labeled_of(result, [1.0], result.created_at))
    state = path.stats.to_state()
    state["params"] = ("exp", 3600.0, 0.05)
    state["seen"] = {str(result.inference_id): ("A", 1, 5.0, 1, (1.0,), True)}
    state["shadow"] = {"horizon": 3600.0, "arms": {}, "pairs": {}, "latest": 5.0}
    restored = ExperimentStats.from_state(state)
    assert restored.report() == path.report()
    del state["shadow"]
    assert ExperimentStats.from_state(state).report().arms == path.report().arms


def test_shadow_ids_are_stable_and_distinct() -> None:
    ids = [uuid.UUID(int=i) for i in range(1000)]
    assert len({shadow_id(i, arm) for i in ids for arm in SHADOWS}) == 2000
    assert [shadow_id(i, "S") for i in ids] == [shadow_id(i, "S") for i in ids]
