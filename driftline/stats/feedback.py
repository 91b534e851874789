"""What feedback means, and the Brier score and realized accuracy/F1 of a window from it.

A feedback score is a number in [0, 1]: how positive the user says the text really is. Two
helpers give it meaning everywhere in driftline: `truth` (the label the feedback says is right)
and `reward` (how much one score agrees with the predicted label, for the bandit and the A/B
test).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from driftline.stats._fixed import from_units, to_units
from driftline.stats.confusion import Confusion

TRUTH_LEVEL = 0.5
"""A mean feedback at or above this says the text is truly positive."""


def truth(feedback_mean: float) -> int:
    """The true label according to an inference's mean feedback.

    >>> truth(0.5), truth(0.49)
    (1, 0)
    """
    return int(feedback_mean >= TRUTH_LEVEL)


def reward(label: int, score: float) -> float:
    """How much one feedback score agrees with the predicted label: 1 - |label - score|.

    >>> reward(1, 1.0), reward(1, 0.25), reward(0, 0.25)
    (1.0, 0.25, 0.75)
    """
    return 1.0 - abs(label - score)


# (prediction correct, predicted label) -> confusion cell
_CELL = {(True, 1): "tp", (False, 1): "fp", (False, 0): "fn", (True, 0): "tn"}


@dataclass(frozen=True)
class FeedbackSummary:
    """Feedback metrics of a window: Brier score (None without feedback) and realized confusion."""

    brier: float | None
    realized: Confusion


class FeedbackMetrics:
    """Brier score and realized confusion matrix over the inferences of a window that have feedback.

    An inference may receive several feedback scores in [0, 1]; it counts once, with the mean
    of its scores. Brier is the mean of (p - feedback_mean)^2. For the realized confusion
    matrix an inference's true label is `truth(feedback_mean)`. When a new score changes
    an inference's mean, the caller removes the old contribution and adds the new one; the
    sums are exact fixed-point integers, so `remove` undoes `update` exactly.

    Examples
    --------
    >>> fb = FeedbackMetrics()
    >>> for p, label, mean in [(0.9, 1, 1.0), (0.7, 1, 0.0), (0.2, 0, 0.0), (0.4, 0, 1.0)]:
    ...     fb = fb.update(p, label, mean)
    >>> s = fb.value()
    >>> round(s.brier, 6), s.realized.accuracy, s.realized.f1
    (0.225, 0.5, 0.5)

    A second score of 1.0 for the (0.7, 1) inference moves its mean from 0.0 to 0.5:

    >>> s = fb.remove(0.7, 1, 0.0).update(0.7, 1, 0.5).value()
    >>> round(s.brier, 6), s.realized.accuracy, round(s.realized.f1, 4)
    (0.1125, 0.75, 0.8)

    References
    ----------
    [^1]: Brier, G. W. (1950). Verification of forecasts expressed in terms of probability.
    Monthly Weather Review, 78(1), 1-3.

    """

    def __init__(self) -> None:
        self._squared_error = 0  # sum of (p - feedback_mean)^2 in fixed-point units
        self._cells = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}

    def _contribution(self, p: float, label: int, feedback_mean: float) -> tuple[int, str]:
        if not (0.0 <= p <= 1.0 and 0.0 <= feedback_mean <= 1.0):
            raise ValueError(f"p {p!r} and feedback mean {feedback_mean!r} must be in [0, 1]")
        if label not in (0, 1):
            raise ValueError(f"predicted label {label!r} is not 0 or 1")
        correct = truth(feedback_mean) == label
        return to_units((p - feedback_mean) ** 2), _CELL[correct, int(label)]

    def update(self, p: float, label: int, feedback_mean: float) -> Self:
        """Add an inference: predicted probability, predicted label, mean feedback."""
        squared_error, cell = self._contribution(p, label, feedback_mean)
        self._squared_error += squared_error
        self._cells[cell] += 1
        return self

    def remove(self, p: float, label: int, feedback_mean: float) -> Self:
        """Remove a contribution that `update` added earlier with the same arguments."""
        squared_error, cell = self._contribution(p, label, feedback_mean)
        if self._cells[cell] == 0:
            raise ValueError(f"no {cell.upper()} inference in the window to remove")
        self._squared_error -= squared_error
        self._cells[cell] -= 1
        return self

    def value(self) -> FeedbackSummary:
        """Brier score and realized confusion matrix of the inferences in the window."""
        n = sum(self._cells.values())
        return FeedbackSummary(
            brier=from_units(self._squared_error) / n if n else None,
            realized=Confusion.from_cells(n=n, **self._cells),
        )

    def to_state(self) -> dict[str, Any]:
        """Plain-data state (ints) for a recovery snapshot."""
        return {"squared_error_units": self._squared_error, **self._cells}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from `to_state()`."""
        fb = cls()
        fb._squared_error = state["squared_error_units"]
        fb._cells = {cell: state[cell] for cell in fb._cells}
        return fb
