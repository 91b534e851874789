import math
import random
import subprocess
import sys
from collections import Counter

import pytest

from driftline.ab import assign_arm, unit_interval

N = 10_000


def random_ids(seed: int, n: int = N) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def test_same_unit_always_gets_the_same_arm(make_experiment):
    exp = make_experiment(0.5, 0.3, 0.2)
    ids = random_ids(seed=1, n=1000)
    first = [assign_arm(exp, key).name for key in ids]
    assert [assign_arm(exp, key).name for key in reversed(ids)] == first[::-1]


def test_assignment_is_the_same_in_another_process_with_another_hash_seed():
    code = "from driftline.ab import unit_interval; print(repr(unit_interval('exp', 'user-42')))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert float(out) == unit_interval("exp", "user-42")


def test_unit_interval_is_pinned_so_a_changed_hash_fails_loudly():
    # Changing the hash would silently move every running subject to another arm.
    assert unit_interval("exp-1", "alice") == pytest.approx(0.7517019313864483, abs=1e-15)


def test_name_and_key_boundary_cannot_collide():
    assert unit_interval("ab", "c") != unit_interval("a", "bc")


@pytest.mark.parametrize(
    "weights",
    [(0.5, 0.5), (0.9, 0.1), (0.5, 0.3, 0.2), (3.0, 1.0)],
    ids=["half-half", "ninety-ten", "three-arms", "unnormalised"],
)
def test_arm_counts_match_weights_within_a_binomial_bound(make_experiment, weights):
    # Each count is Binomial(n, w): |count - n*w| <= 4 sd fails by chance with p < 1e-4 per arm.
    exp = make_experiment(*weights)
    counts = Counter(assign_arm(exp, key).name for key in random_ids(seed=2))
    total = sum(weights)
    for arm in exp.arms:
        w = arm.weight / total
        assert abs(counts[arm.name] - N * w) <= 4 * math.sqrt(N * w * (1 - w)), (arm.name, counts)


def test_different_experiments_assign_independently(make_experiment):
    # If assignments were independent, agreement on a 50/50 split is Binomial(n, 0.5):
    # within 4 sd of n/2. Identical hashing across experiments would give agreement n.
    ids = random_ids(seed=3)
    first, second = make_experiment(0.5, 0.5, name="exp-1"), make_experiment(0.5, 0.5, name="exp-2")
    agree = sum(assign_arm(first, key).name == assign_arm(second, key).name for key in ids)
    assert abs(agree - N / 2) <= 4 * math.sqrt(N / 4)


def test_unit_interval_is_uniform():
    # Every decile of [0, 1) holds n/10 points within 4 binomial sd.
    deciles = Counter(int(unit_interval("exp", key) * 10) for key in random_ids(seed=4))
    assert set(deciles) == set(range(10))
    assert all(abs(c - N / 10) <= 4 * math.sqrt(N * 0.09) for c in deciles.values()), deciles
