"""Alert rules with a stated false-alarm rate: a per-window test and a rule across windows.

A fixed level on a drift statistic (KS D > 0.2, domain AUC > 0.6) is either blind to moderate
shifts or noisy. Here each window's statistic is first turned into a one-sided score with a
known null distribution, its probit z (standard normal when the window is drawn like the
reference), then a rule across windows decides when to alarm:

- **Per-window test** (`p_z`, `domain_z`): a p-value (KS; the MMD's permutation p-value)
  gives z = Phi^-1(1 - p); the domain AUC is standardised by its null sd, which its one-sided
  95% threshold states (`driftline.stats.domain_classifier`: the null is normal with mean
  0.5). A window is significant at level alpha when z > Phi^-1(1 - alpha).
- **Persistence** (`Persistence`): alarm when k consecutive windows are significant.
- **CUSUM** (`Cusum`): one-sided Page CUSUM on z, S = max(0, S + z - drift), alarm when S
  exceeds `threshold`.

Sliding windows overlap, so their statistics are positively correlated and the rules'
false-alarm rates cannot be computed as if windows were independent: `bench/detectors.py`
measures them on in-domain traffic replayed through the monitor's own window code.

Each rule alarms on the window where it starts firing, not again while it keeps firing (the
policy's "alert on the crossing"); its state is plain data for a recovery snapshot. A window
with no value (the domain classifier skipped it) leaves a rule as it was.

>>> rule = Cusum(drift=0.5, threshold=4.0)
>>> [rule.update(z) for z in [0.1, -1.0, 2.0, 2.5, 1.5, 3.0, -3.0, -3.0, -3.0]]
[False, False, False, False, True, False, False, False, False]
>>> rule.firing, rule.total
(False, 0.0)
>>> persistence = Persistence(k=2, alpha=0.05)
>>> [persistence.update(z) for z in [2.0, 0.1, 2.0, 1.7, 2.5, None, 0.0]]
[False, False, False, True, False, False, False]

References
----------
[^1]: Page, E. S. (1954). Continuous inspection schemes. Biometrika, 41(1/2), 100-115.
[^2]: Basseville, M., & Nikiforov, I. V. (1993). Detection of abrupt changes: theory and
application. Prentice Hall, ch. 2.2 (CUSUM), ch. 5 (average run length).
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from scipy.special import ndtri

DOMAIN_THRESHOLD_ALPHA = 0.05
"""The one-sided level of the domain AUC threshold in reports (`domain.FeatureDrift`)."""
Z_CAP = 8.0
"""|z| is capped here: one extreme window (p = 1e-300) must not carry a CUSUM for ever."""


def _cap(z: float) -> float:
    return max(-Z_CAP, min(Z_CAP, z))


def probit_upper(p: float) -> float:
    """Phi^-1(1 - p), as `scipy.stats.norm.isf(p)` computes it (-ndtri(p), exact in the tail
    where 1 - p would round), without `rv_continuous`'s argument checks: 0.1 us a call
    against 34, and a monitor emission makes a few.

    >>> round(probit_upper(0.05), 3), probit_upper(0.0), probit_upper(1.0)
    (1.645, inf, -inf)
    """
    return float(-ndtri(p))


def p_z(p_value: float | None) -> float | None:
    """Probit of a one-window p-value: z = Phi^-1(1 - p), standard normal under no drift.

    >>> round(p_z(0.05), 3), p_z(1.0), p_z(None)
    (1.645, -8.0, None)
    """
    if p_value is None:
        return None
    return _cap(probit_upper(min(max(p_value, 0.0), 1.0)))


def domain_z(auc: float | None, threshold: float | None) -> float | None:
    """The domain AUC in null standard deviations above 0.5.

    The report's threshold is 0.5 + Phi^-1(0.95) sd, so sd = (threshold - 0.5) / 1.645.

    >>> round(domain_z(0.6, 0.55), 3)
    3.29
    """
    if auc is None or threshold is None or not threshold > 0.5:
        return None
    sd = (threshold - 0.5) / probit_upper(DOMAIN_THRESHOLD_ALPHA)
    return _cap((auc - 0.5) / sd)


class Rule(Protocol):
    firing: bool

    def update(self, z: float | None) -> bool: ...
    def describe(self) -> str: ...
    def to_state(self) -> dict[str, Any]: ...


class Persistence:
    """Alarm when `k` consecutive windows are significant at level `alpha` (one-sided).

    Fires on the k-th significant window in a row and stays firing (no new alarm) until a
    window is not significant.
    """

    def __init__(self, k: int, alpha: float, state: dict[str, Any] | None = None) -> None:
        if k < 1 or not 0.0 < alpha < 1.0:
            raise ValueError("need k >= 1 and 0 < alpha < 1")
        self.k, self.alpha = k, alpha
        self.level = probit_upper(alpha)
        """z above which a window is significant."""
        self.run: int = state["run"] if state else 0
        self.firing: bool = state["firing"] if state else False

    def update(self, z: float | None) -> bool:
        """One window's z (None: no value, nothing changes); True when the alarm starts."""
        if z is None:
            return False
        if z <= self.level:
            self.run, self.firing = 0, False
            return False
        self.run += 1
        if self.run >= self.k and not self.firing:
            self.firing = True
            return True
        return False

    def describe(self) -> str:
        return f"{self.run} windows in a row significant at alpha {self.alpha:g}"

    def to_state(self) -> dict[str, Any]:
        return {"run": self.run, "firing": self.firing}


class Cusum:
    """One-sided CUSUM on window z scores: S = max(0, S + z - drift); alarm at S > threshold.

    `drift` is the allowance: about half the shift in z one wants to detect. Fires when S
    first exceeds `threshold` and stays firing (no new alarm) until S is back at 0.
    """

    def __init__(self, drift: float, threshold: float, state: dict[str, Any] | None = None) -> None:
        if not drift >= 0.0 or not threshold > 0.0:
            raise ValueError("need drift >= 0 and threshold > 0")
        self.drift, self.threshold = drift, threshold
        self.total: float = state["total"] if state else 0.0
        self.firing: bool = state["firing"] if state else False

    def update(self, z: float | None) -> bool:
        """One window's z (None: no value, nothing changes); True when the alarm starts."""
        if z is None or math.isnan(z):
            return False
        self.total = max(0.0, self.total + z - self.drift)
        if self.total == 0.0:
            self.firing = False
        if self.total > self.threshold and not self.firing:
            self.firing = True
            return True
        return False

    def describe(self) -> str:
        return (
            f"CUSUM {self.total:.3g} of window z scores (drift {self.drift:g}) "
            f"crossed {self.threshold:g}"
        )

    def to_state(self) -> dict[str, Any]:
        return {"total": self.total, "firing": self.firing}
