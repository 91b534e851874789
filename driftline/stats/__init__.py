"""Incremental monitoring statistics: pure code, no I/O; each supports a sliding window."""

from driftline.stats.cbpe import CBPE
from driftline.stats.change import ErrorStreamDetector
from driftline.stats.confusion import Confusion
from driftline.stats.domain_classifier import DomainAUC, domain_auc
from driftline.stats.feedback import FeedbackMetrics, FeedbackSummary
from driftline.stats.ks import SlidingKS

__all__ = [
    "CBPE",
    "Confusion",
    "DomainAUC",
    "ErrorStreamDetector",
    "FeedbackMetrics",
    "FeedbackSummary",
    "SlidingKS",
    "domain_auc",
]
