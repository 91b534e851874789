"""Calibrator and reference artifacts, on simulated scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import brier_score_loss

from driftline.monitoring.reference import (
    FEATURE_SAMPLE,
    Calibrator,
    build_reference,
    fit_calibrator,
)
from models import reference


def scores(n: int, seed: int, distort: float) -> tuple[np.ndarray, np.ndarray]:
    """Scores p with labels drawn from p**distort: distort=1 is perfectly calibrated."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    return p, (rng.uniform(size=n) < p**distort).astype(int)


@pytest.mark.parametrize("seed", range(20))
def test_calibrated_scores_keep_the_identity(seed: int) -> None:
    p, y = scores(3000, seed, distort=1.0)
    assert fit_calibrator(p, y).kind == "identity"


@pytest.mark.parametrize("distort", [0.3, 3.0, 1.5])
def test_isotonic_is_kept_when_it_lowers_the_held_out_brier_score(distort: float) -> None:
    p, y = scores(3000, 0, distort)
    calibrator = fit_calibrator(p, y)
    assert calibrator.kind == "isotonic"
    fresh_p, fresh_y = scores(3000, 1, distort)
    assert brier_score_loss(fresh_y, calibrator.predict(fresh_p)) < brier_score_loss(
        fresh_y, fresh_p
    )


@pytest.mark.parametrize("distort", [1.0, 0.3, 3.0])
def test_calibrated_output_is_monotone_and_in_the_unit_interval(distort: float) -> None:
    calibrator = fit_calibrator(*scores(2000, 2, distort))
    grid = np.concatenate([[-0.5], np.linspace(0, 1, 1001), [1.5]])
    out = calibrator.predict(grid)
    assert np.all((out >= 0) & (out <= 1))
    assert np.all(np.diff(out) >= 0)


def test_too_few_labels_of_a_class_give_the_identity() -> None:
    assert fit_calibrator(np.array([0.2, 0.7, 0.9]), np.array([0, 1, 1])).kind == "identity"
    assert Calibrator.identity().predict(np.array([0.3])) == pytest.approx([0.3])


@pytest.mark.parametrize("sparse", [False, True])
def test_reference_round_trips_through_files(tmp_path: Path, sparse: bool) -> None:
    p, y = scores(2500, 3, distort=2.0)
    dense = np.random.default_rng(0).normal(size=(2500, 8))
    features = sp.csr_matrix(np.where(dense > 1, dense, 0)) if sparse else dense
    row_ids = np.arange(10_000, 12_500)
    ref = build_reference(p, y, features, row_ids)
    assert ref.features.shape == (FEATURE_SAMPLE, 8)
    assert set(ref.feature_row_ids) <= set(row_ids)
    reference.save(ref, tmp_path)
    back = reference.read(tmp_path)
    assert sp.issparse(back.features) == sparse
    got = back.features.toarray() if sparse else back.features
    want = ref.features.toarray() if sparse else ref.features
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(back.probabilities, p)
    np.testing.assert_array_equal(back.labels, y)
    assert back.calibrator.kind == ref.calibrator.kind == "isotonic"
    np.testing.assert_array_equal(back.calibrator.predict(p), ref.calibrator.predict(p))
