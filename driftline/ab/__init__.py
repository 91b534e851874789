"""A/B testing: experiments, sticky assignment, a Thompson-sampling bandit and an mSPRT."""

from driftline.ab.assignment import assign_arm, unit_interval
from driftline.ab.experiment import Arm, Experiment
from driftline.ab.sequential import (
    KEEP_RUNNING,
    NO_DIFFERENCE,
    MixtureSPRT,
    SequentialResult,
    confidence_half_width,
    log_mixture_ratio,
)
from driftline.ab.thompson import ThompsonSampler

__all__ = [
    "KEEP_RUNNING",
    "NO_DIFFERENCE",
    "Arm",
    "Experiment",
    "MixtureSPRT",
    "SequentialResult",
    "ThompsonSampler",
    "assign_arm",
    "confidence_half_width",
    "log_mixture_ratio",
    "unit_interval",
]
