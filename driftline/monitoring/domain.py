"""Feature drift per emission: the domain classifier on a bounded, reproducible sample.

The classifier (`driftline.stats.domain_classifier`) is the one statistic recomputed per
emission, so its cost is bounded: at most `rows` rows per side, drawn with a seed derived from
(model, window end), so a window re-emitted after a replay gets the same sample and the same
AUC; and it runs on every `every`-th emission only (the others report no AUC).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from driftline.monitoring.rows import decode_rows
from driftline.stats.domain_classifier import Features, domain_auc

FOLDS = 5
"""Folds of the domain classifier's out-of-fold AUC."""


@dataclass(frozen=True)
class FeatureDrift:
    auc: float | None = None
    threshold: float | None = None
    """The AUC's one-sided 95% null threshold."""
    drifted: bool | None = None


def window_seed(*parts: object) -> int:
    """A stable 64-bit seed from the parts (the same in every process and Python version)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


class DomainCheck:
    """The domain classifier of one model: reference feature rows against a window's rows."""

    def __init__(self, reference: Features, rows: int, every: int, emissions: int = 0) -> None:
        self.reference = reference
        self.rows = rows
        self.every = every
        self.emissions = emissions
        """Emissions so far; the check runs on emission 1, 1 + every, 1 + 2 every, ..."""

    def run(self, seed: int, rows: Callable[[], Sequence[bytes]]) -> FeatureDrift:
        """Feature drift of the window for one emission.

        `rows` gives the window's encoded rows in event-time order; it is called only on the
        emissions the check runs on, so the others do not pay for ordering the window.
        """
        self.emissions += 1
        if (self.emissions - 1) % self.every:
            return FeatureDrift()
        window = rows()
        rng = np.random.default_rng(seed)
        if len(window) > self.rows:
            window = [window[i] for i in np.sort(rng.choice(len(window), self.rows, replace=False))]
        ref = self.reference
        if ref.shape[0] > self.rows:
            ref = ref[np.sort(rng.choice(ref.shape[0], self.rows, replace=False))]
        current = decode_rows(list(window), self.reference.shape[1])
        try:
            result = domain_auc(ref, current, folds=FOLDS, seed=0)
        except ValueError:  # too few distinct rows in the window for the folds
            return FeatureDrift()
        return FeatureDrift(result.auc, result.threshold, result.drifted)
