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
