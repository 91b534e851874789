"""Incremental monitoring statistics: pure code, no I/O; each supports a sliding window.

The names below load on first use (PEP 562), so a process that needs one statistic does not
import the libraries of the others (River for change detection, scikit-learn for the domain
classifier): the A/B flow, say, stays small.

>>> from driftline import stats
>>> stats.SlidingKS.__module__
'driftline.stats.ks'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from driftline.stats.cbpe import CBPE
    from driftline.stats.change import ErrorStreamDetector
    from driftline.stats.confusion import Confusion
    from driftline.stats.domain_classifier import DomainAUC, domain_auc
    from driftline.stats.feedback import FeedbackMetrics, FeedbackSummary
    from driftline.stats.ks import SlidingKS
    from driftline.stats.mmd import RandomFourierMMD

_MODULE_OF = {
    "CBPE": "cbpe",
    "Confusion": "confusion",
    "DomainAUC": "domain_classifier",
    "ErrorStreamDetector": "change",
    "FeedbackMetrics": "feedback",
    "FeedbackSummary": "feedback",
    "RandomFourierMMD": "mmd",
    "SlidingKS": "ks",
    "domain_auc": "domain_classifier",
}
__all__ = [
    "CBPE",
    "Confusion",
    "DomainAUC",
    "ErrorStreamDetector",
    "FeedbackMetrics",
    "FeedbackSummary",
    "RandomFourierMMD",
    "SlidingKS",
    "domain_auc",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
