"""The MLflow adapter: tracking store set-up, aliases, and loading a registered model.

The embedded default is a sqlite tracking store and an artifact folder under the project data
directory; `DRIFTLINE_MLFLOW_TRACKING_URI` points it at a server instead. Models are addressed by
alias (`champion`, `challenger`, ...): registry stages are deprecated.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from driftline.settings import Settings
from models import lookup

log = logging.getLogger(__name__)

# mlflow is imported lazily: it takes about a second, and most commands never need it.


def configure(settings: Settings) -> None:
    """Point mlflow at driftline's store and make sure the experiment exists."""
    import mlflow

    uri = settings.mlflow.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # flows log JSON
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(settings.mlflow.experiment) is None:
        location: str | None = settings.mlflow.artifacts or None  # None: the server's own
        if location is not None and "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
            location = Path(location).resolve().as_uri()
        mlflow.create_experiment(settings.mlflow.experiment, artifact_location=location)
    mlflow.set_experiment(settings.mlflow.experiment)


def client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    configure(settings)
    uri = settings.mlflow.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_version(settings: Settings, name: str, alias: str) -> str | None:
    """The version behind `name@alias`, or None when the model or the alias does not exist."""
    try:
        return lookup.alias_version(settings.mlflow.tracking_uri, name, alias)
    except lookup.NotReadable:
        pass
    from mlflow.exceptions import MlflowException

    try:
        return str(client(settings).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def has_version(settings: Settings, name: str, version: str) -> bool:
    """Whether `name` version `version` is registered."""
    try:
        return lookup.has_version(settings.mlflow.tracking_uri, name, version)
    except lookup.NotReadable:
        pass
    from mlflow.exceptions import MlflowException

    try:
        client(settings).get_model_version(name, version)
    except MlflowException:  # not found, or not a version number
        return False
    return True


def registered(settings: Settings) -> dict[str, tuple[set[str], str | None]]:
    """Registered model names, with their aliases and latest version."""
    try:
        return lookup.registered(settings.mlflow.tracking_uri)
    except lookup.NotReadable:
        pass
    models = {}
    for model in client(settings).search_registered_models():
        versions = [int(v.version) for v in model.latest_versions or []]
        latest = str(max(versions)) if versions else None
        models[model.name] = (set((model.aliases or {}).keys()), latest)
    return models


def set_alias(settings: Settings, name: str, version: str, alias: str) -> None:
    client(settings).set_registered_model_alias(name, alias, str(version))
    log.info("alias set", extra={"model": name, "version": str(version), "alias": alias})


def _import_skops() -> None:
    """Import `skops.io` without its walk of scikit-learn. skops lists the types it trusts by
    default with `sklearn.utils.all_estimators()`, which imports every scikit-learn module (and
    through one of them torch, when it is installed): 83 MB in each process that reads a TF-IDF
    model, of which the model needs a handful. While skops imports, the walk finds nothing;
    `read_model` then trusts, of the types a file names, those the walk would have listed
    (`_sklearn_estimators`), importing only their modules."""
    if "skops.io" in sys.modules:
        return
    import sklearn.utils

    walk = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        import skops.io  # noqa: F401  # imported with the walk switched off
    finally:
        sklearn.utils.all_estimators = walk


_NOT_WALKED = {"tests", "externals", "setup", "conftest", "experimental", "estimator_checks"}
"""Modules `all_estimators` skips (its `_MODULE_TO_IGNORE`)."""


def _sklearn_estimators(names: list[str]) -> list[str]:
    """Of `names` (types a model file holds, as `module.Class`), those skops trusts by default:
    the concrete, public scikit-learn estimator classes that a public scikit-learn module
    offers, as `all_estimators` finds them.

    >>> _sklearn_estimators(["sklearn.linear_model._logistic.LogisticRegression",
    ...                      "sklearn.base.BaseEstimator", "builtins.eval", "os.system"])
    ['sklearn.linear_model._logistic.LogisticRegression']
    """
    import importlib
    import inspect

    from sklearn.base import BaseEstimator

    trusted = []
    for name in names:
        module, _, cls = name.rpartition(".")
        parts = module.split(".")
        if parts[0] != "sklearn" or cls.startswith("_") or _NOT_WALKED.intersection(parts):
            continue
        public = ".".join(
            parts[: next((i for i, p in enumerate(parts) if p.startswith("_")), None)]
        )
        try:
            found = getattr(importlib.import_module(public), cls, None)
        except ImportError:
            continue
        if (
            inspect.isclass(found)
            and issubclass(found, BaseEstimator)
            and found is not BaseEstimator
            and not inspect.isabstract(found)
            and f"{found.__module__}.{found.__qualname__}" == name
        ):
            trusted.append(name)
    return trusted


def download_model(settings: Settings, name: str, version: str, folder: Path) -> Path:
    """Copy the files of `name` version `version` into `folder`; returns the model's folder."""
    from mlflow.artifacts import download_artifacts

    configure(settings)
    folder.mkdir(parents=True, exist_ok=True)
    return Path(download_artifacts(f"models:/{name}/{version}", dst_path=str(folder)))


def read_model(folder: Path) -> Any:
    """The estimator in an MLflow model folder, read with skops as `mlflow.sklearn.load_model`
    reads it, without MLflow's model layer: that imports pandas and pyarrow (60 MB in each flow
    that serves or monitors models) for signatures the flows never look at.

    Only skops files are read (what `models.train` logs): they admit only the trusted types
    listed with the model, where a pickle could run any code.
    """
    _import_skops()
    import skops.io
    import yaml

    flavor = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["sklearn"]
    if flavor.get("serialization_format") != "skops":
        raise ValueError(
            f"the model in {folder} is stored as {flavor.get('serialization_format')!r}:"
            " only skops models are read"
        )
    path = folder / flavor["pickled_model"]
    trusted = flavor.get("skops_trusted_types") or []
    trusted += _sklearn_estimators(skops.io.get_untrusted_types(file=path))
    return skops.io.load(path, trusted=trusted)


def versions(settings: Settings) -> list[dict[str, Any]]:
    """Every registered version with its aliases and headline metrics, for `models list`."""
    mlflow_client = client(settings)
    rows = []
    for model in mlflow_client.search_registered_models(order_by=["name ASC"]):
        aliases: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in mlflow_client.search_model_versions(f"name = '{model.name}'"):
            metrics = mlflow_client.get_run(mv.run_id).data.metrics if mv.run_id else {}
            rows.append(
                {
                    "name": model.name,
                    "version": str(mv.version),
                    "aliases": ",".join(sorted(aliases.get(str(mv.version), []))),
                    "test_f1": metrics.get("test_f1"),
                    "test_accuracy": metrics.get("test_accuracy"),
                    "test_roc_auc": metrics.get("test_roc_auc"),
                    "training_seconds": metrics.get("training_seconds"),
                }
            )
    return sorted(rows, key=lambda r: (r["name"], int(r["version"])))
