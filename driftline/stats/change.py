"""Change detection on the per-event error stream: ADWIN (River's core) or Page-Hinkley.

River's detectors are the reference, but `river.drift` imports River's data sets and through
them pandas and SQLAlchemy (80 MB in the monitor). So ADWIN runs on River's own compiled core,
`river._river_rust.drift.AdaptiveWindowing` (the object `river.drift.ADWIN` wraps, importable
alone), and Page-Hinkley, a dozen lines, is written out here. The tests check that both detect
at exactly the events River's `ADWIN` and `PageHinkley` do.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from typing import Any, Literal, Self

from river._river_rust.drift import AdaptiveWindowing

Method = Literal["adwin", "page_hinkley"]


class Adwin:
    """ADWIN (Bifet & Gavalda, 2007) as `river.drift.ADWIN` runs it: after a detection, the
    next event starts a new window. The state is the core pickled (trusted bytes only)."""

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        self.params: dict[str, Any] = {
            "delta": delta,
            "clock": clock,
            "max_buckets": max_buckets,
            "min_window_length": min_window_length,
            "grace_period": grace_period,
        }
        self._window = AdaptiveWindowing(**self.params)
        self._detected = False

    def update(self, error: float) -> bool:
        if self._detected:
            self._window = AdaptiveWindowing(**self.params)
        self._detected = bool(self._window.update(error))
        return self._detected

    def to_state(self) -> dict[str, Any]:
        return {"window": pickle.dumps(self._window), "detected": self._detected}

    def resume(self, state: dict[str, Any]) -> None:
        self._window = pickle.loads(state["window"])
        self._detected = state["detected"]


class PageHinkley:
    """Page-Hinkley (Page, 1954) as `river.drift.PageHinkley` computes it, in both directions:
    the cumulative deviation from the running mean, faded by `alpha`, less `delta` per event;
    a change when it rises `threshold` above its minimum (or falls below its maximum)."""

    def __init__(
        self,
        min_instances: int = 30,
        delta: float = 0.005,
        threshold: float = 50.0,
        alpha: float = 1 - 0.0001,
    ) -> None:
        self.params = {
            "min_instances": min_instances,
            "delta": delta,
            "threshold": threshold,
            "alpha": alpha,
        }
        self._restart()

    def _restart(self) -> None:
        self._detected = False
        self.n = 0.0
        self.mean = 0.0
        self.increase = 0.0
        self.decrease = 0.0
        self.lowest_increase = math.inf
        self.highest_decrease = -1.0  # River's start value, kept for identical detections

    def update(self, error: float) -> bool:
        p = self.params
        if self._detected:
            self._restart()
        self.n += 1.0
        self.mean += (1.0 / self.n) * (error - self.mean)
        deviation = error - self.mean
        self.increase = p["alpha"] * self.increase + deviation - p["delta"]
        self.decrease = p["alpha"] * self.decrease + deviation + p["delta"]
        self.lowest_increase = min(self.lowest_increase, self.increase)
        self.highest_decrease = max(self.highest_decrease, self.decrease)
        if self.n >= p["min_instances"]:
            self._detected = (
                self.increase - self.lowest_increase > p["threshold"]
                or self.highest_decrease - self.decrease > p["threshold"]
            )
        return self._detected

    _FIELDS = ("n", "mean", "increase", "decrease", "lowest_increase", "highest_decrease")

    def to_state(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self._FIELDS} | {"detected": self._detected}

    def resume(self, state: dict[str, Any]) -> None:
        for f in self._FIELDS:
            setattr(self, f, state[f])
        self._detected = state["detected"]


_DETECTORS: dict[str, Callable[..., Adwin | PageHinkley]] = {
    "adwin": Adwin,
    "page_hinkley": PageHinkley,
}


class ErrorStreamDetector:
    """Signals the event at which the error rate of a model changes.

    Feed one error per labelled event (0/1 misclassification, or |p - feedback| in [0, 1]).
    Unlike the window statistics, this runs over the whole stream: ADWIN keeps its own adaptive
    window, Page-Hinkley a cumulative sum, and both restart after a detection. ADWIN's state
    holds its core pickled, so `from_state` must only be given state this process family wrote
    (the recovery store), never data from outside.

    Parameters
    ----------
    method
        "adwin" (River's ADWIN) or "page_hinkley" (River's PageHinkley).
    params
        Keyword arguments of the detector, e.g. `delta=0.002` for ADWIN or `threshold=50.0`
        for Page-Hinkley, with River's names and defaults.

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

    def __init__(self, method: Method = "adwin", **params: float | int) -> None:
        if method not in _DETECTORS:
            raise ValueError(f"method must be one of {sorted(_DETECTORS)}, not {method!r}")
        self.method = method
        self.params = params
        self.n_detections = 0
        self._detector = _DETECTORS[method](**params)

    def update(self, error: float) -> bool:
        """Add the error of one event; True when a change is detected at this event."""
        detected = self._detector.update(error)
        self.n_detections += detected
        return detected

    def to_state(self) -> dict[str, Any]:
        """State for a recovery snapshot."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "n_detections": self.n_detections,
            "state": self._detector.to_state(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        """Rebuild from `to_state()` (trusted state only: ADWIN's core is unpickled).

        State written before the detectors ran without River's wrappers holds a pickled River
        detector, which would import pandas: the detector starts afresh from there.
        """
        detector = cls(state["method"], **state["params"])
        detector.n_detections = state["n_detections"]
        if "state" in state:
            detector._detector.resume(state["state"])
        return detector
