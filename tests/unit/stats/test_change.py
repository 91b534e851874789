import numpy as np
import pytest

from driftline.stats import ErrorStreamDetector

METHODS = ["adwin", "page_hinkley"]


def error_stream(seed: int, rates: list[float], length: int = 2000) -> list[float]:
    """Binary errors, `length` events at each rate in turn."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.random(length) < rate for rate in rates]).astype(float).tolist()


def detections(detector: ErrorStreamDetector, errors: list[float]) -> list[int]:
    return [i for i, error in enumerate(errors) if detector.update(error)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("method", METHODS)
def test_detects_an_error_rate_jump_after_it_and_not_before(method: str, seed: int) -> None:
    found = detections(ErrorStreamDetector(method), error_stream(seed, [0.1, 0.5]))
    # Jump at event 2000. Measured first detection over 30 seeds: ADWIN 2047-2079,
    # Page-Hinkley 2061-2147; allow 200 events of delay.
    assert found
    assert 2000 <= found[0] < 2200


@pytest.mark.parametrize("method", METHODS)
def test_counts_one_detection_per_jump(method: str) -> None:
    detector = ErrorStreamDetector(method)
    found = detections(detector, error_stream(0, [0.1, 0.5, 0.1]))
    assert detector.n_detections == len(found)
    assert any(2000 <= i < 2300 for i in found)
    assert any(4000 <= i < 4300 for i in found)
    assert all(i >= 2000 for i in found)


@pytest.mark.parametrize("method", METHODS)
def test_restored_detector_continues_identically(method: str) -> None:
    errors = error_stream(1, [0.1, 0.5])
    detector = ErrorStreamDetector(method, **({"delta": 0.01} if method == "adwin" else {}))
    detections(detector, errors[:1900])
    restored = ErrorStreamDetector.from_state(detector.to_state())
    assert restored.params == detector.params
    assert detections(restored, errors[1900:]) == detections(detector, errors[1900:])
    assert restored.n_detections == detector.n_detections >= 1


def test_rejects_an_unknown_method() -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        ErrorStreamDetector("cusum")  # type: ignore[arg-type]


def river_detector(method: str, params: dict[str, float]):  # type: ignore[no-untyped-def]
    from river import drift  # imported here: River's wrappers are the independent reference

    return drift.ADWIN(**params) if method == "adwin" else drift.PageHinkley(**params)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("adwin", {}),
        ("adwin", {"delta": 0.05, "clock": 1, "grace_period": 30}),
        ("page_hinkley", {}),
        ("page_hinkley", {"threshold": 10.0, "min_instances": 5, "alpha": 0.99}),
    ],
)
@pytest.mark.parametrize("seed", range(3))
def test_detects_at_exactly_the_events_river_does(
    method: str, params: dict[str, float], seed: int
) -> None:
    """River's `ADWIN` and `PageHinkley` on the same stream: the same events, every one
    (binary errors and |p - feedback| errors, several jumps up and down)."""
    rng = np.random.default_rng(seed)
    errors = error_stream(seed, [0.1, 0.5, 0.1, 0.3])
    errors += rng.beta(2, 5, 2000).tolist() + rng.beta(5, 2, 2000).tolist()
    ours = ErrorStreamDetector(method, **params)  # type: ignore[arg-type]
    river = river_detector(method, params)
    expected = []
    for i, error in enumerate(errors):
        river.update(error)
        if river.drift_detected:
            expected.append(i)
    assert len(expected) >= 4  # every jump found: the comparison is not between two silences
    assert detections(ours, errors) == expected


def test_a_detector_saved_with_river_wrappers_starts_afresh() -> None:
    """State from before (a pickled River detector) does not import River's wrappers."""
    old = {"method": "adwin", "params": {}, "n_detections": 3, "detector": b"not unpickled"}
    detector = ErrorStreamDetector.from_state(old)
    assert detector.n_detections == 3
    assert detections(detector, error_stream(0, [0.1, 0.5]))[0] >= 2000
