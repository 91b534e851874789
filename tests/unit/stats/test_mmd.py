"""The random Fourier MMD against the exact quadratic-time Gaussian MMD, and its null level."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import sparse
from scipy.spatial.distance import cdist, pdist
from scipy.stats import binom

from driftline.stats import RandomFourierMMD
from driftline.stats.mmd import gaussian_mmd2, median_distance


def exact_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """Biased V-statistic by brute force with scipy: the oracle, independent of the module."""

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-cdist(a, b, "sqeuclidean") / (2 * sigma**2)).mean())

    return k(x, x) + k(y, y) - 2 * k(x, y)


def rff_mmd2(reference: np.ndarray, window: np.ndarray, dim: int, seed: int, sigma: float) -> float:
    mmd = RandomFourierMMD(reference, dim=dim, seed=seed, sigma=sigma, permutations=1)
    value = mmd.update(mmd.features(window)).value()
    assert value is not None
    return value


# Rows exactly representable in float32, since the map rounds its input to float32.
def normal(rng: np.random.Generator, size: tuple[int, int], shift: float = 0.0) -> np.ndarray:
    return rng.normal(shift, 1.0, size=size).astype(np.float32).astype(np.float64)


@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_rff_mmd_is_within_four_bound_sds_of_the_exact_mmd_for_every_seed(shift: float) -> None:
    rng = np.random.default_rng(11)
    reference, window = normal(rng, (300, 5)), normal(rng, (200, 5), shift)
    sigma = median_distance(reference)
    exact = exact_mmd2(reference, window, sigma)
    assert gaussian_mmd2(reference, window, sigma, block=64) == pytest.approx(exact, abs=1e-12)
    dim, seeds = 256, 20
    errors = np.array([rff_mmd2(reference, window, dim, s, sigma) - exact for s in range(seeds)])
    # Stated tolerance: the RFF MMD^2 is the mean of D independent terms f_j^2 in [0, 8] whose
    # mean is the exact MMD^2, so it is unbiased with sd <= sqrt(8 MMD^2 / D) (Var f^2 <=
    # 8 E f^2), and near normal: 4 such sds is exceeded with probability ~1e-4 per seed.
    # (The bound is loose: measured errors reach 0.1-0.9 of one bound sd.)
    bound_sd = math.sqrt(8 * exact / dim)
    assert np.abs(errors).max() <= 4 * bound_sd
    # Unbiased: the mean error over seeds is within 4 standard errors of 0.
    assert abs(errors.mean()) <= 4 * errors.std(ddof=1) / math.sqrt(seeds)


def test_rff_error_shrinks_like_one_over_sqrt_d() -> None:
    rng = np.random.default_rng(12)
    reference, window = normal(rng, (300, 5)), normal(rng, (200, 5), 0.3)
    sigma = median_distance(reference)
    exact = exact_mmd2(reference, window, sigma)

    def rms(dim: int) -> float:
        errors = [rff_mmd2(reference, window, dim, s, sigma) - exact for s in range(30)]
        return float(np.sqrt(np.mean(np.square(errors))))

    # Expected ratio sqrt(1024 / 64) = 4; an RMS over 30 seeds is within ~15% of its value.
    assert rms(64) / rms(1024) > 2.5


def test_update_then_remove_restores_the_state_bit_for_bit() -> None:
    rng = np.random.default_rng(2)
    mmd = RandomFourierMMD(normal(rng, (200, 4)), dim=64, permutations=10)
    z = mmd.features(normal(rng, (500, 4)))
    mmd.update(z[:100])
    before = mmd.to_state()
    order = rng.permutation(np.arange(100, 500))
    for i in order:
        mmd.update(z[i])
    assert mmd.to_state() != before
    for i in rng.permutation(order):  # removed in another order than added
        mmd.remove(z[i])
    assert mmd.to_state() == before
    mmd.remove(z[:100])
    assert mmd.n == 0 and mmd.to_state()["units"] == [0] * 64


def test_sparse_and_dense_rows_map_to_the_same_bits() -> None:
    rng = np.random.default_rng(3)
    dense = sparse.random(300, 500, density=0.03, random_state=4, dtype=np.float32).toarray()
    as_csr = sparse.csr_matrix(dense)
    a = RandomFourierMMD(dense[:200], dim=64, permutations=50)
    b = RandomFourierMMD(as_csr[:200], dim=64, permutations=50)
    assert np.array_equal(a.features(dense), b.features(as_csr))
    assert np.array_equal(a.features(dense[200:]), a.features(sparse.csr_array(dense[200:])))
    a.update(a.features(dense[200:]))
    b.update(b.features(as_csr[200:]))
    assert a.to_state() == b.to_state()
    assert a.value() == b.value() > 0 and a.threshold() == b.threshold()
    rows = rng.permutation(300)[:50]  # and a sparse matrix with unsorted indices
    shuffled = sparse.csr_array(dense[rows])
    shuffled.indices, shuffled.data = shuffled.indices.copy(), shuffled.data.copy()
    for r in range(50):
        lo, hi = shuffled.indptr[r], shuffled.indptr[r + 1]
        flip = np.arange(hi - 1, lo - 1, -1)
        shuffled.indices[lo:hi], shuffled.data[lo:hi] = shuffled.indices[flip], shuffled.data[flip]
    shuffled.has_sorted_indices = False
    assert np.array_equal(a.features(shuffled), a.features(dense[rows]))


def test_median_heuristic_is_the_median_distance_between_distinct_rows() -> None:
    rng = np.random.default_rng(5)
    rows = normal(rng, (100, 3))
    # Distances come from |x|^2 + |y|^2 - 2 x.y, which loses some digits to cancellation.
    assert median_distance(rows) == pytest.approx(float(np.median(pdist(rows))), rel=1e-6)
    with_copies = np.vstack([rows, rows[:40]])  # identical pairs are left out
    assert median_distance(with_copies) > 0.5 * median_distance(rows)
    assert median_distance(np.ones((5, 2))) == 1.0


def test_null_level_false_positive_rate_is_near_alpha_for_every_window_size() -> None:
    # A fresh reference (400 rows) and window per trial: the level is one over draws of both.
    rng = np.random.default_rng(6)
    sizes, trials = (10, 75, 300, 1000), 500  # on the grid, between, at and beyond m / 2
    false_alarms = dict.fromkeys(sizes, 0)
    for trial in range(trials):
        mmd = RandomFourierMMD(normal(rng, (400, 5)), dim=64, seed=trial, permutations=100)
        for n in sizes:
            false_alarms[n] += bool(mmd.empty().update(mmd.features(normal(rng, (n, 5)))).drifted())
    # Stated bound: trials are independent, so each count is Binomial(500, p), p the level's
    # false-positive rate over draws (about 0.05: the quantile is the order statistic
    # ceil(0.95 (B + 1)) of B splits, whatever B). The 99.9% interval of Binomial(500, 0.05) is
    # [11, 42]. Measured rates over 1000 trials, windows of 10 to 4000 rows, B = 100 or 200:
    # 0.046-0.061 on Gaussian rows, 0.038-0.050 on sparse TF-IDF-like rows.
    low, high = binom.interval(0.999, trials, 0.05)
    assert all(low <= count <= high for count in false_alarms.values()), false_alarms


def test_a_shifted_distribution_is_detected() -> None:
    rng = np.random.default_rng(7)
    mmd = RandomFourierMMD(normal(rng, (1000, 5)), dim=256)
    detected = [
        mmd.empty().update(mmd.features(normal(rng, (200, 5), 0.2))).drifted() for _ in range(50)
    ]
    assert sum(bool(d) for d in detected) >= 45  # measured 100 of 100 at this shift
    empty = mmd.empty()
    assert empty.value() is None and empty.drifted() is None and mmd.threshold(0) is None


def test_state_is_plain_data_and_rebuilds_the_same_statistic() -> None:
    mmd = RandomFourierMMD(sparse.random(200, 50, density=0.2, random_state=9), dim=32)
    x = sparse.random(30, 50, density=0.2, random_state=10)
    mmd.update(mmd.features(x))
    state = json.loads(json.dumps(mmd.to_state()))
    again = RandomFourierMMD.from_state(state)
    assert np.array_equal(again.features(x), mmd.features(x))  # W and b regenerated
    assert (again.value(), again.threshold(), again.n) == (mmd.value(), mmd.threshold(), 30)
    assert again.remove(again.features(x)).to_state()["units"] == [0] * 32


def test_invalid_input_is_refused() -> None:
    rng = np.random.default_rng(9)
    mmd = RandomFourierMMD(normal(rng, (50, 3)), dim=16, permutations=10)
    with pytest.raises(ValueError, match="columns"):
        mmd.features(np.ones((2, 4)))
    with pytest.raises(ValueError, match="sqrt"):
        mmd.update(np.ones(16))
    with pytest.raises(ValueError, match="cannot remove"):
        mmd.remove(mmd.features(np.ones((1, 3))))
    with pytest.raises(ValueError, match="finite"):
        mmd.features(np.array([[np.nan, 0.0, 0.0]]))
