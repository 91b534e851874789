"""Confidence-based performance estimation (CBPE): expected confusion matrix without labels."""

from __future__ import annotations

from typing import Any, Self

from driftline.stats._fixed import ONE, from_units, to_units
from driftline.stats.confusion import Confusion


class CBPE:
    """Expected confusion matrix of a window from calibrated probabilities, without labels.

    If p is the calibrated probability that an event is positive and y the label the model
    predicted, the event adds p to the expected TP and 1 - p to FP when y = 1, and p to FN and
    1 - p to TN when y = 0. The sums are additive, so `remove` takes an event out of a sliding
    window; they are kept in exact fixed-point units, so it does so without rounding drift.

    The estimate is only as good as the calibration: when the model is no longer calibrated on
    the current data (new domain, label shift), CBPE can report a good F1 while the realized
    F1 collapses. Show it next to feature drift and feedback-based metrics.

    Examples
    --------
    >>> cbpe = CBPE()
    >>> for p, y in [(0.9, 1), (0.8, 1), (0.3, 0), (0.1, 0)]:
    ...     cbpe = cbpe.update(p, y)
    >>> est = cbpe.estimate()
    >>> est.n, round(est.tp, 6), round(est.fp, 6), round(est.fn, 6), round(est.tn, 6)
    (4, 1.7, 0.3, 0.4, 1.6)
    >>> round(est.accuracy, 6), round(est.f1, 6)
    (0.825, 0.829268)
    >>> cbpe.remove(0.9, 1).remove(0.8, 1).estimate().precision is None
    True

    References
    ----------
    [^1]: NannyML, "Confidence-based Performance Estimation (CBPE)",
    https://nannyml.readthedocs.io/en/stable/how_it_works/performance_estimation.html

    """

    def __init__(self) -> None:
        self._n = [0, 0]  # events by predicted label
        self._p = [0, 0]  # sum of p (fixed-point units) by predicted label

    def _check(self, p: float, y: int) -> int:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability {p!r} is outside [0, 1]")
        if y not in (0, 1):
            raise ValueError(f"predicted label {y!r} is not 0 or 1")
        return int(y)

    def update(self, p: float, y: int) -> Self:
        """Add an event: calibrated probability p, predicted label y (0 or 1)."""
        y = self._check(p, y)
        self._n[y] += 1
        self._p[y] += to_units(p)
        return self

    def remove(self, p: float, y: int) -> Self:
        """Remove an event that `update` added earlier with the same p and y."""
        y = self._check(p, y)
        if self._n[y] == 0:
            raise ValueError(f"no event with predicted label {y} in the window")
        self._n[y] -= 1
        self._p[y] -= to_units(p)
        return self

    def estimate(self) -> Confusion:
        """Expected confusion matrix and rates; a rate is None when its denominator is 0."""
        (n0, n1), (p0, p1) = self._n, self._p
        return Confusion.from_cells(
            n=n0 + n1,
            tp=from_units(p1),
            fp=from_units(n1 * ONE - p1),
            fn=from_units(p0),
            tn=from_units(n0 * ONE - p0),
        )

    def to_state(self) -> dict[str, Any]:
        """Plain-data state (ints) for a recovery snapshot."""
        return {"n": list(self._n), "p_units": list(self._p)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from `to_state()`."""
        cbpe = cls()
        cbpe._n, cbpe._p = list(state["n"]), list(state["p_units"])
        return cbpe
