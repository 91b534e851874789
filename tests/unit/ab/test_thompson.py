import json
import random

import pytest

from driftline.ab.thompson import ThompsonSampler


def run_bandit(sampler: ThompsonSampler, p_reward: dict[str, float], rounds: int, seed: int):
    """Route `rounds` requests and feed back Bernoulli rewards; returns the chosen arms."""
    rewards = random.Random(seed)
    chosen = []
    for i in range(rounds):
        arm = sampler.choose(f"inference-{seed}-{i}")
        sampler.update(arm, float(rewards.random() < p_reward[arm]))
        chosen.append(arm)
    return chosen


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_traffic_moves_to_the_better_arm(seed):
    chosen = run_bandit(ThompsonSampler(["A", "B"]), {"A": 0.3, "B": 0.6}, 5000, seed)
    share_b = chosen[-1000:].count("B") / 1000
    assert share_b > 0.8


def test_probabilities_agree_with_the_reward_stream():
    sampler = ThompsonSampler(["A", "B", "C"])
    run_bandit(sampler, {"A": 0.3, "B": 0.6, "C": 0.5}, 3000, seed=4)
    probabilities = sampler.probabilities(n_draws=20_000, seed=0)
    assert sum(probabilities.values()) == pytest.approx(1.0)
    assert max(probabilities, key=probabilities.get) == "B"
    assert probabilities["B"] > 0.9


def test_fresh_sampler_splits_traffic_evenly():
    # Uniform priors: each of 2 arms is chosen Binomial(4000, 0.5) times, within 4 sd (126).
    sampler = ThompsonSampler(["A", "B"])
    share_a = sum(sampler.choose(i) == "A" for i in range(4000))
    assert abs(share_a - 2000) <= 126
    assert sampler.probabilities(n_draws=4000, seed=1)["A"] == pytest.approx(0.5, abs=0.04)


def test_same_seed_and_state_choose_the_same_arm():
    sampler = ThompsonSampler(["A", "B"]).update("A", 1.0).update("B", 0.0)
    assert len({sampler.choose("inference-7") for _ in range(20)}) == 1
    assert sampler.choose(random.Random(99)) == sampler.choose(99)


def test_fractional_reward_splits_between_alpha_and_beta():
    sampler = ThompsonSampler(["A"], prior_alpha=2.0, prior_beta=3.0).update("A", 0.25)
    assert sampler.to_state() == {"posteriors": {"A": [2.25, 3.75]}}


def test_state_survives_json_and_replays_identical_choices():
    sampler = ThompsonSampler(["A", "B", "C"])
    run_bandit(sampler, {"A": 0.5, "B": 0.55, "C": 0.45}, 300, seed=5)
    restored = ThompsonSampler.from_state(json.loads(json.dumps(sampler.to_state())))
    rewards = {"A": 0.5, "B": 0.55, "C": 0.45}
    assert run_bandit(restored, rewards, 500, seed=6) == run_bandit(sampler, rewards, 500, seed=6)
    assert restored.to_state() == sampler.to_state()


def test_state_is_a_copy_not_a_view():
    sampler = ThompsonSampler(["A"])
    state = sampler.to_state()
    sampler.update("A", 1.0)
    assert state == {"posteriors": {"A": [1.0, 1.0]}}


@pytest.mark.parametrize("reward", [-0.1, 1.5, float("nan")])
def test_reward_outside_unit_interval_is_rejected(reward):
    with pytest.raises(ValueError, match="reward must be in"):
        ThompsonSampler(["A"]).update("A", reward)


def test_unknown_arm_and_bad_prior_are_rejected():
    with pytest.raises(KeyError):
        ThompsonSampler(["A"]).update("Z", 1.0)
    with pytest.raises(ValueError, match="prior must be positive"):
        ThompsonSampler(["A"], prior_alpha=0.0)
    with pytest.raises(ValueError, match="at least one arm"):
        ThompsonSampler([])
