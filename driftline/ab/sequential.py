"""Mixture sequential probability ratio test (mSPRT): compares two arms and stays valid under
continuous monitoring.

A fixed-horizon z-test checked after every event declares a winner between identical arms far
more often than its alpha (see the tests). The mSPRT instead tracks a likelihood ratio Lambda_n
of "the difference of mean rewards is theta" against "it is 0", averaged over a normal prior
theta ~ N(0, tau^2). Under the null Lambda_n is a martingale with mean 1, so by Ville's
inequality P(Lambda_n ever reaches 1/alpha) <= alpha: the running minimum of 1/Lambda_n is a
p-value that can be read at any time, and inverting the test gives a confidence sequence, an
interval for the difference that holds at all times at once.

With difference D = mean_b - mean_a and its variance V = s^2 (1/n_a + 1/n_b),

    Lambda_n = sqrt(V / (V + tau^2)) * exp(tau^2 D^2 / (2 V (V + tau^2)))

and the confidence sequence is the running intersection of D ± sqrt(V (V + tau^2) / tau^2 *
(log((V + tau^2) / V) - 2 log alpha)). s^2 is the plug-in variance of all observations pooled
(Johari et al.'s plug-in, taken under the null: a real difference inflates it a little, which
costs some power but not validity); nothing is tested until both arms have ``min_samples``
observations and s^2 > 0. The guarantee is exact for normal data with a known variance and a
fixed allocation ratio, and asymptotic with a plug-in variance; the A/A tests measure it on
Bernoulli data.

Decisions (higher reward is better):

- ``"<arm> better"`` once the p-value reaches alpha, naming the arm ahead at that moment; it
  stays, as the p-value can only fall;
- ``"no_detectable_difference"`` once the confidence sequence lies inside (-mde, mde): the arms
  differ by less than the minimum effect worth detecting. The sequence only narrows, so this
  stays too, unless it later excludes 0 and a winner (taking precedence) is named;
- ``"keep_running"`` otherwise.

Parameters
----------
arm_a, arm_b
    Arm names accepted by `update` and used in the decision.
alpha
    Type I error bound over the whole, continuously monitored run.
tau
    Standard deviation of the mixing prior, in reward units (mixing variance tau^2 = 0.01 by
    default): the test is most powerful for differences of about tau, here 10 points of
    accuracy. Larger tau finds large effects sooner and small ones later.
mde
    Minimum detectable effect in reward units that ends the test without a winner.
min_samples
    Observations each arm needs before the plug-in variance is trusted.

Example
-------
>>> import random
>>> rng = random.Random(7)
>>> test = MixtureSPRT(arm_a="champion", arm_b="challenger")
>>> while test.result().decision == "keep_running":
...     arm, p = rng.choice([("champion", 0.6), ("challenger", 0.75)])
...     _ = test.update(arm, float(rng.random() < p))
>>> result = test.result()
>>> result.decision, result.n_a, result.n_b, round(result.p_value, 4)
('challenger better', 281, 277, 0.0454)
>>> round(result.ci_lower, 3), round(result.ci_upper, 3)
(0.001, 0.208)

References
----------
Johari, Koomen, Pekelis and Walsh (2017), "Peeking at A/B Tests: Why it matters, and what to
do about it", KDD. Robbins (1970), "Statistical methods related to the law of the iterated
logarithm", Annals of Mathematical Statistics 41(5).

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "KEEP_RUNNING",
    "NO_DIFFERENCE",
    "MixtureSPRT",
    "SequentialResult",
    "confidence_half_width",
    "log_mixture_ratio",
]

KEEP_RUNNING = "keep_running"
NO_DIFFERENCE = "no_detectable_difference"


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """Snapshot of the test; ``None`` where an arm has no data or the test has not started."""

    arm_a: str
    arm_b: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    difference: float | None
    p_value: float
    ci_lower: float | None
    ci_upper: float | None
    decision: str


@dataclass(slots=True)
class _Moments:
    """Running count, mean and sum of squared deviations of one arm (Welford)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)


def log_mixture_ratio(difference: ArrayLike, variance: ArrayLike, tau: float) -> NDArray:
    """log Lambda for H0 "no difference"; takes arrays so simulations run the same formula."""
    difference, variance = np.asarray(difference), np.asarray(variance)
    t2 = tau * tau
    return 0.5 * np.log(variance / (variance + t2)) + t2 * difference**2 / (
        2 * variance * (variance + t2)
    )


def confidence_half_width(variance: ArrayLike, tau: float, alpha: float) -> NDArray:
    """Half-width of the set of differences the mSPRT does not reject at ``alpha``."""
    variance = np.asarray(variance)
    t2 = tau * tau
    return np.sqrt(
        variance * (variance + t2) / t2 * (np.log((variance + t2) / variance) - 2 * np.log(alpha))
    )


class MixtureSPRT:
    """Always-valid test of mean reward between two arms, updated one observation at a time."""

    def __init__(
        self,
        arm_a: str = "A",
        arm_b: str = "B",
        alpha: float = 0.05,
        tau: float = 0.1,
        mde: float = 0.02,
        min_samples: int = 10,
    ):
        if arm_a == arm_b:
            raise ValueError(f"arms must differ, got {arm_a!r} twice")
        if not 0 < alpha < 1 or tau <= 0 or mde <= 0 or min_samples < 1:
            raise ValueError(
                "need 0 < alpha < 1, tau > 0, mde > 0, min_samples >= 1, "
                f"got {alpha=}, {tau=}, {mde=}, {min_samples=}"
            )
        self.arm_a, self.arm_b = arm_a, arm_b
        self.alpha, self.tau, self.mde, self.min_samples = alpha, tau, mde, min_samples
        self._stats = {arm_a: _Moments(), arm_b: _Moments()}
        self._p_value = 1.0
        self._bounds: tuple[float, float] | None = None  # confidence sequence
        self._winner: str | None = None

    def update(self, arm: str, value: float) -> Self:
        """Add one reward observed on ``arm`` and re-test."""
        if not math.isfinite(value):
            raise ValueError(f"value must be finite, got {value}")
        self._stats[arm].add(value)
        self._test()
        return self

    def _test(self) -> None:
        a, b = self._stats.values()
        if min(a.n, b.n) < self.min_samples:
            return
        n = a.n + b.n
        difference = b.mean - a.mean
        pooled = (a.m2 + b.m2 + difference**2 * a.n * b.n / n) / (n - 1)
        variance = pooled * (1 / a.n + 1 / b.n)
        if variance <= 0:
            return
        log_ratio = float(log_mixture_ratio(difference, variance, self.tau))
        self._p_value = min(self._p_value, math.exp(-log_ratio))
        if self._winner is None and self._p_value <= self.alpha:
            self._winner = self.arm_b if difference > 0 else self.arm_a
        half = float(confidence_half_width(variance, self.tau, self.alpha))
        lower, upper = self._bounds or (-math.inf, math.inf)
        self._bounds = (max(lower, difference - half), min(upper, difference + half))

    def result(self) -> SequentialResult:
        """Current estimates, always-valid p-value and confidence sequence, and decision."""
        a, b = self._stats.values()
        bounds = self._bounds
        if self._winner is not None:
            decision = f"{self._winner} better"
        elif bounds and -self.mde < bounds[0] and bounds[1] < self.mde:
            decision = NO_DIFFERENCE
        else:
            decision = KEEP_RUNNING
        return SequentialResult(
            arm_a=self.arm_a,
            arm_b=self.arm_b,
            n_a=a.n,
            n_b=b.n,
            mean_a=a.mean if a.n else None,
            mean_b=b.mean if b.n else None,
            difference=b.mean - a.mean if a.n and b.n else None,
            p_value=self._p_value,
            ci_lower=bounds[0] if bounds else None,
            ci_upper=bounds[1] if bounds else None,
            decision=decision,
        )

    def to_state(self) -> dict[str, Any]:
        """Parameters and running statistics as JSON-ready builtins, for flow snapshots."""
        return {
            "params": {
                "arm_a": self.arm_a,
                "arm_b": self.arm_b,
                "alpha": self.alpha,
                "tau": self.tau,
                "mde": self.mde,
                "min_samples": self.min_samples,
            },
            "stats": {arm: [m.n, m.mean, m.m2] for arm, m in self._stats.items()},
            "p_value": self._p_value,
            "bounds": list(self._bounds) if self._bounds else None,
            "winner": self._winner,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a test saved by `to_state`."""
        test = cls(**state["params"])
        test._stats = {arm: _Moments(*m) for arm, m in state["stats"].items()}
        test._p_value = state["p_value"]
        test._bounds = tuple(state["bounds"]) if state["bounds"] else None
        test._winner = state["winner"]
        return test
