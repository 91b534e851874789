"""A model's monitoring reference (`driftline.monitoring.reference`), stored with its MLflow run.

Training logs the reference under the run's `reference/` artifacts as plain arrays (no pickle);
`download` copies them out of MLflow and `read` loads them (`models.fetch` does both for the
monitor).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from driftline.monitoring.reference import Calibrator, Reference
from driftline.settings import Settings

ARTIFACT_DIR = "reference"


def save(reference: Reference, folder: Path) -> None:
    """Write the reference as plain arrays (no pickle) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "arrays.npz",
        probabilities=reference.probabilities,
        labels=reference.labels,
        row_ids=reference.row_ids,
        feature_row_ids=reference.feature_row_ids,
        calibrator_x=reference.calibrator.x,
        calibrator_y=reference.calibrator.y,
    )
    if sp.issparse(reference.features):
        sp.save_npz(folder / "features.npz", reference.features)
    else:
        np.save(folder / "features.npy", reference.features)
    (folder / "calibrator.json").write_text(json.dumps({"kind": reference.calibrator.kind}))


def read(folder: Path) -> Reference:
    arrays = np.load(folder / "arrays.npz")
    sparse = folder / "features.npz"
    features = sp.load_npz(sparse).tocsr() if sparse.exists() else np.load(folder / "features.npy")
    kind = json.loads((folder / "calibrator.json").read_text())["kind"]
    return Reference(
        probabilities=arrays["probabilities"],
        labels=arrays["labels"],
        features=features,
        calibrator=Calibrator(kind, arrays["calibrator_x"], arrays["calibrator_y"]),
        row_ids=arrays["row_ids"],
        feature_row_ids=arrays["feature_row_ids"],
    )


def download(settings: Settings, name: str, version: str, folder: Path) -> Path:
    """Copy the reference logged with the run that produced `name` version `version` into
    `folder`; returns the folder `read` takes."""
    from mlflow.artifacts import download_artifacts

    from models import registry

    run_id = registry.client(settings).get_model_version(name, str(version)).run_id
    folder.mkdir(parents=True, exist_ok=True)
    local = download_artifacts(
        run_id=run_id,
        artifact_path=ARTIFACT_DIR,
        dst_path=str(folder),
        tracking_uri=settings.mlflow.tracking_uri,
    )
    return Path(local)
