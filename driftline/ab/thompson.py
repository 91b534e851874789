"""Thompson sampling over experiment arms with Beta-Bernoulli posteriors on feedback reward.

Each arm keeps a Beta(alpha, beta) posterior on its mean reward, starting from the prior.
A reward r in [0, 1] (1 = correct prediction, or a fractional feedback score) adds r to alpha
and 1 - r to beta. To route a request, one value is drawn from every posterior and the arm with
the largest draw wins, so traffic drifts to the better arm while weaker arms keep a share that
matches the chance they are best.

Draws are made by inverting the Beta CDF at uniforms from ``random.Random.random()``, the one
stream Python guarantees across versions; seeding the generator from the inference id makes a
replay of the same request against the same posterior choose the same arm. The state is plain
builtins (``to_state``/``from_state``) so a Bytewax snapshot survives restarts and upgrades.

Parameters
----------
arms
    Arm names, in the order the draws are made.
prior_alpha, prior_beta
    Beta prior for every arm; 1, 1 is uniform on the mean reward.

Example
-------
>>> sampler = ThompsonSampler(["A", "B"])
>>> for _ in range(30):
...     _ = sampler.update("A", 0.0).update("B", 1.0)
>>> sampler.choose("inference-42")
'B'
>>> sampler.probabilities(n_draws=1000, seed=0)
{'A': 0.0, 'B': 1.0}
>>> ThompsonSampler.from_state(sampler.to_state()).to_state() == sampler.to_state()
True

References
----------
Russo, Van Roy, Kazerouni, Osband and Wen (2018), "A Tutorial on Thompson Sampling",
Foundations and Trends in Machine Learning 11(1). Agrawal and Goyal (2012), "Analysis of
Thompson Sampling for the Multi-armed Bandit Problem", COLT (fractional rewards, section 2).

"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Self

import numpy as np

__all__ = ["ThompsonSampler"]


class ThompsonSampler:
    """Routes to the arm whose posterior draw is largest; learns from rewards in [0, 1]."""

    def __init__(self, arms: Iterable[str], prior_alpha: float = 1.0, prior_beta: float = 1.0):
        if prior_alpha <= 0 or prior_beta <= 0:
            raise ValueError(f"prior must be positive, got ({prior_alpha}, {prior_beta})")
        self.posteriors = {arm: [prior_alpha, prior_beta] for arm in arms}
        if not self.posteriors:
            raise ValueError("need at least one arm")

    @staticmethod
    def posterior(
        reward_sum: float, count: int, prior_alpha: float = 1.0, prior_beta: float = 1.0
    ) -> tuple[float, float]:
        """The Beta(alpha, beta) an arm has after `count` rewards summing to `reward_sum`: what
        `update` leaves, in one step (for reports, from counts kept elsewhere).

        >>> s = ThompsonSampler(["A"]).update("A", 1.0).update("A", 0.25)
        >>> tuple(s.posteriors["A"]) == ThompsonSampler.posterior(1.25, 2)
        True
        """
        return prior_alpha + reward_sum, prior_beta + count - reward_sum

    def update(self, arm: str, reward: float) -> Self:
        """Credit ``arm`` with one observed reward."""
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"reward must be in [0, 1], got {reward}")
        posterior = self.posteriors[arm]
        posterior[0] += reward
        posterior[1] += 1.0 - reward
        return self

    def choose(self, rng: random.Random | int | str) -> str:
        """Arm for one request; a seed such as the inference id makes the choice replayable."""
        # Imported here: the A/B flow reports posteriors and never draws, and scipy.special
        # is 27 MB of its RSS (the inference flow, which draws, has it from scikit-learn).
        from scipy.special import betaincinv

        if not isinstance(rng, random.Random):
            rng = random.Random(rng)
        alphas, betas = zip(*self.posteriors.values(), strict=True)
        draws = betaincinv(alphas, betas, [rng.random() for _ in alphas])
        return list(self.posteriors)[int(np.argmax(draws))]

    def probabilities(self, n_draws: int = 10_000, seed: int = 0) -> dict[str, float]:
        """Monte Carlo estimate of P(arm has the highest mean reward), for reporting."""
        alphas, betas = np.array(list(self.posteriors.values())).T
        draws = np.random.default_rng(seed).beta(alphas, betas, size=(n_draws, len(alphas)))
        wins = np.bincount(draws.argmax(axis=1), minlength=len(alphas))
        return {arm: float(w) / n_draws for arm, w in zip(self.posteriors, wins, strict=True)}

    def to_state(self) -> dict[str, Any]:
        """A fresh copy of the posteriors as JSON-ready builtins."""
        return {"posteriors": {arm: list(ab) for arm, ab in self.posteriors.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild a sampler saved by `to_state`."""
        sampler = cls(state["posteriors"])
        sampler.posteriors = {arm: list(ab) for arm, ab in state["posteriors"].items()}
        return sampler
