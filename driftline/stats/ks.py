"""Two-sample Kolmogorov-Smirnov D between a reference sample and a sliding window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from scipy.stats import kstwo


class SlidingKS:
    """Kolmogorov-Smirnov D between fixed reference probabilities and a sliding window.

    The window is a histogram of `bins` equal bins on [0, 1], so adding or removing an event is
    one integer increment and D costs O(bins), whatever the window size. The reference CDF is
    computed once on the same grid.

    D is evaluated at the bin edges. Both histogram CDFs there equal the exact empirical CDFs
    just left of the edge, so the histogram D never exceeds the exact D, and it falls short by
    at most the largest mass that one bin holds in either sample:
    `0 <= D_exact - D <= max over bins of max(ref_mass[bin], window_mass[bin])`. On continuous
    probabilities that is about 1/bins plus sampling noise; `max_bin_mass()` gives the bound.

    Parameters
    ----------
    reference
        Reference probabilities in [0, 1] (held-out scores of the model at training time).
    bins
        Number of equal histogram bins on [0, 1].

    Examples
    --------
    >>> ks = SlidingKS([0.1, 0.2, 0.3, 0.4], bins=10)
    >>> for p in [0.15, 0.25, 0.85, 0.95]:
    ...     ks = ks.update(p)
    >>> ks.n, ks.d(), ks.p_value()
    (4, 0.5, 0.5)

    Replace the two high values: every value now shares a bin with a reference value, so the
    histogram D is 0 while the exact D is 0.25, which is within the stated bound.

    >>> ks = ks.remove(0.85).remove(0.95).update(0.35).update(0.45)
    >>> ks.d(), ks.max_bin_mass()
    (0.0, 0.25)

    References
    ----------
    [^1]: Hodges, J. L. (1958). The significance probability of the Smirnov two-sample test.
    Arkiv för Matematik, 3(5), 469-486.
    [^2]: `scipy.stats.ks_2samp`, `method="asymp"`: the p-value computed the same way.

    """

    def __init__(self, reference: Sequence[float] | np.ndarray, bins: int = 1000) -> None:
        if bins < 1:
            raise ValueError("bins must be >= 1")
        self.bins = bins
        ref = np.asarray(reference, dtype=np.float64)
        if ref.size == 0 or not np.all((ref >= 0.0) & (ref <= 1.0)):  # NaN fails too
            raise ValueError("reference must be a non-empty sample of values in [0, 1]")
        # Same float product as `_bin`, so reference and window values share bin boundaries.
        idx = np.minimum((ref * bins).astype(np.int64), bins - 1)
        self._set(np.bincount(idx, minlength=bins), np.zeros(bins, dtype=np.int64))

    def _set(self, reference_counts: np.ndarray, counts: np.ndarray) -> None:
        self._ref_counts = reference_counts.astype(np.int64)
        self.m = int(self._ref_counts.sum())
        self._ref_cdf = np.cumsum(self._ref_counts) / self.m
        self._counts = counts.astype(np.int64)
        self.n = int(self._counts.sum())

    def _bin(self, p: float) -> int:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p!r} is outside [0, 1]")
        return min(int(p * self.bins), self.bins - 1)

    def update(self, p: float) -> Self:
        """Add one window probability."""
        self._counts[self._bin(p)] += 1
        self.n += 1
        return self

    def remove(self, p: float) -> Self:
        """Remove a probability that `update` added earlier (it left the window)."""
        i = self._bin(p)
        if self._counts[i] == 0:
            raise ValueError(f"probability {p!r} is not in the window")
        self._counts[i] -= 1
        self.n -= 1
        return self

    def d(self) -> float | None:
        """Histogram KS D, or None for an empty window."""
        if self.n == 0:
            return None
        return float(np.abs(self._ref_cdf - np.cumsum(self._counts) / self.n).max())

    def p_value(self) -> float | None:
        """Asymptotic two-sided p-value, or None for an empty window.

        As `scipy.stats.ks_2samp(method="asymp")`: `kstwo.sf(D, round(n * m / (n + m)))`.
        """
        d = self.d()
        if d is None:
            return None
        return float(kstwo.sf(d, round(self.n * self.m / (self.n + self.m))))

    def max_bin_mass(self) -> float | None:
        """Bound on `D_exact - d()`: the largest mass of one bin in either sample."""
        if self.n == 0:
            return None
        return float(max(self._ref_counts.max() / self.m, self._counts.max() / self.n))

    def to_state(self) -> dict[str, Any]:
        """Plain-data state (ints and lists) for a recovery snapshot."""
        return {
            "bins": self.bins,
            "reference_counts": self._ref_counts.tolist(),
            "counts": self._counts.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from `to_state()`."""
        ks = cls.__new__(cls)
        ks.bins = state["bins"]
        ks._set(np.asarray(state["reference_counts"]), np.asarray(state["counts"]))
        return ks
