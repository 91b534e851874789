"""Change detection on the per-event error stream with River's ADWIN or Page-Hinkley."""

from __future__ import annotations

import pickle
from typing import Any, Literal, Self

from river import drift

_DETECTORS = {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley}


class ErrorStreamDetector:
    """Signals the event at which the error rate of a model changes.

    Feed one error per labelled event (0/1 misclassification, or |p - feedback| in [0, 1]).
    Unlike the window statistics, this runs over the whole stream: ADWIN keeps its own adaptive
    window, Page-Hinkley a cumulative sum, and both restart after a detection. The state is
    the detector pickled (River detectors, including ADWIN's Rust core, support pickle), so
    `from_state` must only be given bytes this process family wrote (the recovery store),
    never data from outside.

    Parameters
    ----------
    method
        "adwin" (`river.drift.ADWIN`) or "page_hinkley" (`river.drift.PageHinkley`).
    params
        Keyword arguments for the River detector, e.g. `delta=0.002` for ADWIN or
        `threshold=50.0` for Page-Hinkley.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> errors = [rng.random() < 0.1 for _ in range(1000)]  # error rate 0.1, then 0.5
    >>> errors += [rng.random() < 0.5 for _ in range(500)]
    >>> detector = ErrorStreamDetector("adwin")
    >>> [i for i, e in enumerate(errors) if detector.update(float(e))]
    [1055]
    >>> detector.n_detections
    1

    References
    ----------
    [^1]: Bifet, A., & Gavalda, R. (2007). Learning from time-changing data with adaptive
    windowing. SIAM International Conference on Data Mining, 443-448.
    [^2]: Page, E. S. (1954). Continuous inspection schemes. Biometrika, 41(1/2), 100-115.

    """

    def __init__(
        self, method: Literal["adwin", "page_hinkley"] = "adwin", **params: float | int | str
    ) -> None:
        if method not in _DETECTORS:
            raise ValueError(f"method must be one of {sorted(_DETECTORS)}, not {method!r}")
        self.method = method
        self.params = params
        self.n_detections = 0
        self._detector = _DETECTORS[method](**params)

    def update(self, error: float) -> bool:
        """Add the error of one event; True when a change is detected at this event."""
        self._detector.update(error)
        detected = bool(self._detector.drift_detected)
        self.n_detections += detected
        return detected

    def to_state(self) -> dict[str, Any]:
        """State for a recovery snapshot; the detector itself is pickled bytes."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "n_detections": self.n_detections,
            "detector": pickle.dumps(self._detector),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from `to_state()` (trusted bytes only: this unpickles)."""
        detector = cls(state["method"], **state["params"])
        detector.n_detections = state["n_detections"]
        detector._detector = pickle.loads(state["detector"])
        return detector
