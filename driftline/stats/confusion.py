"""Binary confusion matrix and the rates derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


@dataclass(frozen=True)
class Confusion:
    """Confusion-matrix cells (counts, or expected counts for CBPE) with accuracy, precision,
    recall and F1.

    A rate whose denominator is 0 is None rather than NaN or 0: "undefined" stays visible in
    JSON and in the lake instead of passing for a measured value. F1 is `2TP / (2TP + FP + FN)`,
    so it is defined (and 0) when the model predicts no positives but positives exist, like
    `sklearn.metrics.f1_score`.

    Parameters
    ----------
    n
        Number of events behind the cells.
    tp, fp, fn, tn
        True/false positives and negatives.
    accuracy, precision, recall, f1
        Derived rates; build with `from_cells` so they stay consistent with the cells.

    Examples
    --------
    >>> c = Confusion.from_cells(n=10, tp=3, fp=1, fn=2, tn=4)
    >>> c.accuracy, c.precision, c.recall, round(c.f1, 4)
    (0.7, 0.75, 0.6, 0.6667)
    >>> Confusion.from_cells(n=2, tp=0, fp=0, fn=0, tn=2).precision is None
    True

    References
    ----------
    [^1]: https://scikit-learn.org/stable/modules/model_evaluation.html#precision-recall-f-measure-metrics

    """

    n: int
    tp: float
    fp: float
    fn: float
    tn: float
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None

    @classmethod
    def from_cells(cls, *, n: int, tp: float, fp: float, fn: float, tn: float) -> Self:
        """Derive the rates from the four cells."""
        return cls(
            n=n,
            tp=tp,
            fp=fp,
            fn=fn,
            tn=tn,
            accuracy=_ratio(tp + tn, tp + fp + fn + tn),
            precision=_ratio(tp, tp + fp),
            recall=_ratio(tp, tp + fn),
            f1=_ratio(2 * tp, 2 * tp + fp + fn),
        )
