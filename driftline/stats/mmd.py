"""Squared maximum mean discrepancy (MMD) with a Gaussian kernel, by random Fourier features.

The exact MMD of a window against a reference costs O((n + m)^2) kernel evaluations per window.
With random Fourier features z, the Gaussian kernel is approximately an inner product,
k(x, y) ~ z(x) . z(y), so a sample's kernel mean embedding is the mean of z over its rows: a
sum that a sliding window keeps with one O(D) `update`/`remove` per event.
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
from scipy import sparse

from driftline.stats.domain_classifier import Features

UNIT = 2.0**40
"""Fixed-point unit of the window sum: one component of z is counted in units of 2**-40.

As in `_fixed.py`, integer sums make `remove` undo `update` bit for bit. Here the units are
numpy int64, so one update is one vectorised add of D integers: a component of z is at most
sqrt(2 / D) in size, so a window of up to 2**23 * sqrt(D / 2) events (95 million at D = 256)
fits in int64, and one component loses at most 2**-41 when converted.
"""
NULL_SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Window sizes at which the null level is estimated (those up to half the reference)."""
MEDIAN_ROWS = 2000
"""Most reference rows (a seeded sample) for the median heuristic."""


def _csr(rows: Features) -> sparse.csr_array:
    """Rows as canonical float32 CSR (sorted indices, no stored zeros), dense rows too."""
    x = sparse.csr_array(rows if sparse.issparse(rows) else np.atleast_2d(rows), dtype=np.float32)
    x = x.copy()  # canonicalising sorts in place: never touch the caller's matrix
    x.sum_duplicates()
    x.eliminate_zeros()
    if not np.isfinite(x.data).all():
        raise ValueError("feature rows must be finite")
    return x


def _squared_distances(x: sparse.csr_array, y: sparse.csr_array) -> np.ndarray:
    """Dense matrix of squared Euclidean distances between the rows of x and y (float64)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    xx = np.asarray(x.multiply(x).sum(axis=1)).ravel()
    yy = np.asarray(y.multiply(y).sum(axis=1)).ravel()
    if y.nnz > y.shape[0] * y.shape[1] / 4:  # dense rows (embeddings): BLAS
        cross = x.toarray() @ y.toarray().T
    else:
        cross = (x @ y.T).toarray()
    return np.maximum(xx[:, None] + yy[None, :] - 2.0 * cross, 0.0)


def median_distance(rows: Features, seed: int = 0, max_rows: int = MEDIAN_ROWS) -> float:
    """The median heuristic: median Euclidean distance between two different rows.

    Pairs of identical rows (repeated texts) are left out, so a sample with many duplicates
    does not get a zero bandwidth; 1.0 when no two rows differ. At most `max_rows` rows, a
    seeded sample, are used.

    >>> median_distance(np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [6.0, 8.0]]))
    5.0
    """
    x = _csr(rows)
    if x.shape[0] > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(x.shape[0], max_rows, replace=False))
        x = x[keep]
    d2 = _squared_distances(x, x)[np.triu_indices(x.shape[0], k=1)]
    # Distances of identical rows come out as float rounding noise, not exactly 0.
    d2 = d2[d2 > 1e-12 * max(float(d2.max(initial=0.0)), 1e-300)]
    return float(np.sqrt(np.median(d2))) if d2.size else 1.0


def gaussian_mmd2(x: Features, y: Features, sigma: float, block: int = 1000) -> float:
    """Exact squared MMD, biased V-statistic, Gaussian kernel exp(-|a - b|^2 / (2 sigma^2)).

    mean k(x, x') + mean k(y, y') - 2 mean k(x, y) over all pairs, the diagonal included:
    O((n + m)^2), computed in blocks of `block` rows. The quantity `RandomFourierMMD`
    approximates (rows are rounded to float32 first, as there).

    >>> x = np.array([[0.0], [1.0]])
    >>> round(gaussian_mmd2(x, x, 1.0), 12), round(gaussian_mmd2(x, x + 10.0, 1.0), 6)
    (0.0, 1.606531)
    """
    a, b = _csr(x), _csr(y)

    def mean_kernel(u: sparse.csr_array, v: sparse.csr_array) -> float:
        total = 0.0
        for start in range(0, u.shape[0], block):
            d2 = _squared_distances(u[start : start + block], v)
            total += float(np.exp(-d2 / (2.0 * sigma * sigma)).sum())
        return total / (u.shape[0] * v.shape[0])

    return mean_kernel(a, a) + mean_kernel(b, b) - 2.0 * mean_kernel(a, b)


class RandomFourierMMD:
    """Squared MMD between a fixed reference sample and a sliding window, in O(D) per event.

    Random Fourier features: z(x) = sqrt(2 / D) cos(W x + b), W with D rows drawn from
    N(0, I / sigma^2) and b from U[0, 2 pi), so that E[z(x) . z(y)] = exp(-|x - y|^2 /
    (2 sigma^2)), the Gaussian kernel. MMD^2 is then |mean_window z - mean_reference z|^2. Its
    expectation over the draw of (W, b) is exactly the biased (V-statistic) Gaussian MMD^2 of the
    same two samples, and, since it is the mean of D independent terms f_j^2 <= 8 with mean
    MMD^2, its standard deviation is at most sqrt(8 MMD^2 / D).

    - **Bandwidth** sigma: the median heuristic on the reference (`median_distance`), once.
    - **Map** (`features`): W is kept dense, float32, one row of D per input column: 4 D
      bytes per column (30 MB for 30k TF-IDF columns at D = 256; 0.4 MB for 384-dim
      embeddings), shared by every window of the model. A sparse row costs its nonzeros times D,
      and is never densified; dense rows go through the same CSR product, so a row maps to the
      same bits whether it is stored dense or sparse. z is float32.
    - **Window**: the sum of z, in int64 fixed-point units (`UNIT`), so `remove` undoes
      `update` exactly; `value()` is O(D).
    - **Null level** (`threshold`): without drift, window and reference means are independent
      means of n and m draws, so mean_window - mean_reference has covariance
      Sigma_z (1/n + 1/m) and MMD^2 / (1/n + 1/m) has a distribution that depends on n only
      through how Gaussian the window mean is. That distribution is estimated once, from
      `permutations` random splits of the reference into g and m - g rows, for g in
      `NULL_SIZES` up to m/2 (nested subsets, seeded): its one-sided (1 - alpha) quantile q(g)
      (order statistic ceil((1 - alpha)(B + 1)) of B splits). The level of a window of n events
      is (1/n + 1/m) q(n), q interpolated in log n and held constant beyond the grid. It is a
      level over draws of reference and window: when n is much larger than m, the reference's
      own sampling noise dominates MMD^2, and for one given reference every large window lands
      on the same side of it.

    Parameters
    ----------
    reference
        Reference rows, one per held-out example (dense array or scipy sparse).
    dim
        D, the number of random features.
    seed
        Seed of W, b, the median heuristic's sample and the permutations.
    sigma
        Kernel bandwidth; default the median heuristic on `reference`.
    permutations
        Random splits of the reference behind the null level.
    alpha
        One-sided significance level of `threshold`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> mmd = RandomFourierMMD(rng.normal(size=(500, 3)), dim=128, permutations=200)
    >>> same = mmd.features(rng.normal(size=(100, 3)))    # once per event
    >>> mmd = mmd.update(same)                            # the 100 rows at once, or row by row
    >>> mmd.n, round(mmd.value(), 4), round(mmd.threshold(), 4), mmd.drifted()
    (100, 0.0041, 0.0098, False)
    >>> shifted = mmd.features(rng.normal(0.5, 1.0, size=(100, 3)))
    >>> mmd = mmd.update(shifted).remove(same)
    >>> mmd.n, round(mmd.value(), 4), mmd.drifted()
    (100, 0.0488, True)
    >>> mmd.remove(shifted).to_state()["units"] == [0] * 128
    True

    References
    ----------
    [^1]: Gretton, A., Borgwardt, K., Rasch, M., Schölkopf, B., & Smola, A. (2012). A kernel
    two-sample test. Journal of Machine Learning Research, 13, 723-773.
    [^2]: Rahimi, A., & Recht, B. (2007). Random features for large-scale kernel machines.
    Advances in Neural Information Processing Systems 20.
    [^3]: Zhao, J., & Meng, D. (2015). FastMMD: Ensemble of circular discrepancy for efficient
    two-sample test. Neural Computation, 27(6), 1345-1372.

    """

    def __init__(
        self,
        reference: Features,
        *,
        dim: int = 256,
        seed: int = 0,
        sigma: float | None = None,
        permutations: int = 1000,
        alpha: float = 0.05,
    ) -> None:
        if dim < 1 or permutations < 1 or not 0.0 < alpha < 1.0:
            raise ValueError("need dim >= 1, permutations >= 1 and 0 < alpha < 1")
        rows = _csr(reference)
        if rows.shape[0] == 0:
            raise ValueError("the reference has no rows")
        if sigma is None:
            sigma = median_distance(rows, seed)
        if not sigma > 0.0:
            raise ValueError(f"sigma must be positive, not {sigma!r}")
        self._set_map(rows.shape[1], dim, float(sigma), seed)
        z = self.features(rows).astype(np.float64)
        self.reference_mean = z.mean(axis=0)
        self.reference_size = z.shape[0]
        self.alpha = alpha
        self.null_sizes, self.null_quantiles, self._null = _null_quantiles(
            z, alpha, permutations, seed
        )
        self._reset()

    def _set_map(self, n_columns: int, dim: int, sigma: float, seed: int) -> None:
        self.n_columns, self.dim, self.sigma, self.seed = n_columns, dim, sigma, seed
        rng = np.random.default_rng(seed)
        self._weights = rng.standard_normal((n_columns, dim), dtype=np.float32)
        self._weights /= np.float32(sigma)
        self._phases = rng.uniform(0.0, 2.0 * math.pi, dim).astype(np.float32)
        self._scale = math.sqrt(2.0 / dim)
        # |units| of one component <= bound, so `max_n` events' sum fits in int64.
        self.max_n = (2**63 - 1) // (math.ceil(self._scale * UNIT) + 1)

    def _reset(self) -> None:
        self.n = 0
        self._units = np.zeros(self.dim, dtype=np.int64)

    def empty(self) -> Self:
        """A new, empty window with the same map, reference and null levels (nothing refit)."""
        window = self.__class__.__new__(self.__class__)
        window.__dict__.update(self.__dict__)
        window._reset()
        return window

    # ---- per event ------------------------------------------------------------------------

    def features(self, rows: Features) -> np.ndarray:
        """z of each row: float32 array (rows, D). Compute it once per event."""
        x = _csr(rows)
        if x.shape[1] != self.n_columns:
            raise ValueError(f"rows have {x.shape[1]} columns, the reference {self.n_columns}")
        z = np.asarray(x @ self._weights)
        z += self._phases
        np.cos(z, out=z)
        z *= np.float32(self._scale)
        return z

    def _to_units(self, z: np.ndarray) -> tuple[np.ndarray, int]:
        scaled = np.asarray(z, dtype=np.float64) * UNIT
        if scaled.shape[-1:] != (self.dim,) or scaled.ndim > 2:
            raise ValueError(f"z must be one row or rows of {self.dim} features")
        if not np.abs(scaled).max() <= self._scale * UNIT * (1.0 + 1e-6):  # NaN fails too
            raise ValueError("z is not a row of `features`: a component exceeds sqrt(2 / D)")
        units = np.rint(scaled, out=scaled).astype(np.int64)
        return (units, 1) if units.ndim == 1 else (units.sum(axis=0), units.shape[0])

    def update(self, z: np.ndarray) -> Self:
        """Add an event's z (one row of `features`), or several rows at once."""
        return self.add_sum(self.sum_of(z))

    def remove(self, z: np.ndarray) -> Self:
        """Remove z that `update` added earlier (the same values): exact, bit for bit."""
        return self.remove_sum(self.sum_of(z))

    def sum_of(self, z: np.ndarray) -> tuple[np.ndarray, int]:
        """What `update(z)` adds: the fixed-point sum of z's rows and their number. Sums add
        exactly, so a group's sum taken out with `remove_sum` leaves what removing each of its
        rows would, and nobody need keep the rows."""
        return self._to_units(z)

    def add_sum(self, total: tuple[np.ndarray, int]) -> Self:
        units, k = total
        if self.n + k > self.max_n:
            raise ValueError(f"a window of more than {self.max_n} events would overflow")
        self._units += units
        self.n += k
        return self

    def remove_sum(self, total: tuple[np.ndarray, int]) -> Self:
        units, k = total
        if k > self.n:
            raise ValueError(f"cannot remove {k} events from a window of {self.n}")
        self._units -= units
        self.n -= k
        return self

    # ---- per emission ---------------------------------------------------------------------

    def value(self) -> float | None:
        """MMD^2 of the window against the reference; None for an empty window."""
        if self.n == 0:
            return None
        diff = self._units.astype(np.float64) / (UNIT * self.n) - self.reference_mean
        return float(diff @ diff)

    def threshold(self, n: int | None = None) -> float | None:
        """One-sided (1 - alpha) null level of MMD^2 for a window of n events (default: now)."""
        n = self.n if n is None else n
        if n <= 0 or not self.null_sizes:
            return None
        q = np.interp(math.log(n), np.log(self.null_sizes), self.null_quantiles)
        return float((1.0 / n + 1.0 / self.reference_size) * q)

    def p_value(self) -> float | None:
        """One-sided permutation p-value of the window's MMD^2, (1 + #null >= it) / (B + 1).

        From the same reference splits as `threshold` (interpolated in log n between the two
        nearest sizes of the grid, held constant beyond it), so it is never below 1 / (B + 1).
        None for an empty window or without a null sample (restored from an older state).
        """
        value = self.value()
        if value is None or not self._null:
            return None
        n, m = self.n, self.reference_size
        scaled = value / (1.0 / n + 1.0 / m)
        ps = [
            (1 + null.size - np.searchsorted(null, scaled, side="left")) / (null.size + 1)
            for null in self._null
        ]
        return float(np.interp(math.log(n), np.log(self.null_sizes), ps))

    def drifted(self) -> bool | None:
        """MMD^2 above its null level; None for an empty window or without a level."""
        value, threshold = self.value(), self.threshold()
        return None if value is None or threshold is None else value > threshold

    # ---- recovery -------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Plain-data state; W and b are not in it but regenerated from (seed, sigma, sizes)."""
        return {
            "n_columns": self.n_columns,
            "dim": self.dim,
            "sigma": self.sigma,
            "seed": self.seed,
            "reference_mean": self.reference_mean.tolist(),
            "reference_size": self.reference_size,
            "alpha": self.alpha,
            "null_sizes": list(self.null_sizes),
            "null_quantiles": list(self.null_quantiles),
            "null": [null.tolist() for null in self._null],
            "n": self.n,
            "units": self._units.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from `to_state()`."""
        mmd = cls.__new__(cls)
        mmd._set_map(state["n_columns"], state["dim"], state["sigma"], state["seed"])
        mmd.reference_mean = np.asarray(state["reference_mean"], dtype=np.float64)
        mmd.reference_size = state["reference_size"]
        mmd.alpha = state["alpha"]
        mmd.null_sizes = tuple(state["null_sizes"])
        mmd.null_quantiles = tuple(state["null_quantiles"])
        mmd._null = tuple(np.asarray(null) for null in state.get("null", ()))
        mmd.n = state["n"]
        mmd._units = np.asarray(state["units"], dtype=np.int64)
        return mmd


def _null_quantiles(
    z: np.ndarray, alpha: float, permutations: int, seed: int
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[np.ndarray, ...]]:
    """Sizes g, the (1 - alpha) quantile of MMD^2 / (1/g + 1/(m - g)) over random splits, and
    the sorted statistics of the splits at each size (the permutation null)."""
    m = z.shape[0]
    if m < 2:
        return (), (), ()
    sizes = sorted({g for g in NULL_SIZES if g < m // 2} | {m // 2})
    rng = np.random.default_rng([seed, 1])
    total = z.sum(axis=0)
    stats = np.empty((len(sizes), permutations))
    chunk = max(1, 2**22 // m)  # rows of the split indicator matrix at a time (32 MB)
    for start in range(0, permutations, chunk):
        rank = np.argsort(rng.random((min(chunk, permutations - start), m)), axis=1)
        for i, g in enumerate(sizes):
            inside = (rank < g).astype(np.float64) @ z  # sums of nested random subsets
            diff = inside / g - (total - inside) / (m - g)
            stats[i, start : start + len(rank)] = (diff * diff).sum(axis=1) / (1 / g + 1 / (m - g))
    k = min(math.ceil((1.0 - alpha) * (permutations + 1)), permutations)
    ordered = np.sort(stats, axis=1)
    quantiles = ordered[:, k - 1]
    return tuple(sizes), tuple(float(q) for q in quantiles), tuple(ordered)
