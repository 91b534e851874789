"""Feature drift per emission: the domain classifier on a bounded, reproducible sample.

The classifier (`driftline.stats.domain_classifier`) is the one statistic recomputed per
emission, so its cost is bounded: at most `rows` rows per side, and it runs on every `every`-th
emission only (the others report no AUC). The window's side is the `rows` events with the
smallest `sample_key` (a hash of the inference id: a uniform sample that the window keeps up to
date per slide, `driftline.monitoring.window`, without ordering all its events); the
reference's is drawn with a seed derived from (model, window end). So a window re-emitted after
a replay gets the same sample and the same AUC.
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


def _hash64(data: bytes) -> int:
    """A stable 64-bit hash (the same in every process and Python version, unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def window_seed(*parts: object) -> int:
    """A stable 64-bit seed from the parts."""
    return _hash64(repr(parts).encode())


def sample_key(inference_id: str) -> int:
    """Where an event ranks for the window's sample: a stable 64-bit hash of its id, so the
    events with the smallest keys are a uniform sample whatever the ids look like.

    >>> sample_key("a") == sample_key("a") != sample_key("b")
    True
    """
    return _hash64(inference_id.encode())


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

        `rows` gives the encoded rows of the window's sample (at most `self.rows`, in
        event-time order); it is called only on the emissions the check runs on.
        """
        self.emissions += 1
        if (self.emissions - 1) % self.every:
            return FeatureDrift()
        window = rows()
        rng = np.random.default_rng(seed)
        ref = self.reference
        if ref.shape[0] > self.rows:
            ref = ref[np.sort(rng.choice(ref.shape[0], self.rows, replace=False))]
        current = decode_rows(list(window), self.reference.shape[1])
        try:
            result = domain_auc(ref, current, folds=FOLDS, seed=0)
        except ValueError:  # too few distinct rows in the window for the folds
            return FeatureDrift()
        return FeatureDrift(result.auc, result.threshold, result.drifted)
