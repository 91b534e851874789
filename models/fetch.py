"""A registered version's model and reference, downloaded by a short-lived child process.

MLflow and its SQLAlchemy store cost a process 90 MB, kept for good once imported. The monitor
and the inference flow need MLflow only to copy out the files of each version they meet, once:
a child process (`python -m models.fetch NAME VERSION FOLDER [PARTS]`) copies them, and the flow
reads the model with skops and the reference as plain arrays. (The inference flow's aliases are
read without MLflow: `models.lookup`.)

    python -m models.fetch sentiment_logreg_tfidf 1 /tmp/v1   # prints where model and reference are
    python -m models.fetch sentiment_logreg_tfidf 1 /tmp/v1 model   # the model only
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftline import logs, settings
from driftline.clock import Clock
from driftline.monitoring.reference import Reference
from driftline.settings import Settings
from driftline.stats.domain_classifier import Features
from models import reference, registry
from models.serving import LoadedModel, with_threads

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 600.0
"""A download from object storage, and the child's MLflow import, on a loaded machine."""

RETRY_AFTER_SECONDS = 30.0
"""A version that could not be fetched gets the same error, without a new child, for this
long: each attempt is a child importing MLflow (seconds of CPU), and a monitor meets the
version again in every micro-batch."""


class FetchError(RuntimeError):
    """The child process could not copy a version's files (its last error line says why)."""


@dataclass(frozen=True)
class Version:
    model: LoadedModel
    reference: Reference


PARTS = ("model", "reference")


def fetch(
    settings: Settings, name: str, version: str, folder: Path, parts: tuple[str, ...] = PARTS
) -> dict[str, Path]:
    """Copy `parts` of `name` version `version` into `folder`, in a child; where each is."""
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, "-m", "models.fetch", name, str(version), str(folder), ",".join(parts)],
        env=os.environ | settings.to_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    if child.returncode != 0:
        last = (child.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"fetching {name} version {version} failed: {last}")
    seconds = round(time.perf_counter() - started, 2)
    log.info("version fetched", extra={"model": name, "version": version, "seconds": seconds})
    return {part: Path(path) for part, path in json.loads(child.stdout.splitlines()[-1]).items()}


class FetchedVersions:
    """Model and reference of each version, fetched on first use; the `models.cache_size`
    most recently used versions are kept, and a failure is kept `RETRY_AFTER_SECONDS`."""

    def __init__(self, settings: Settings, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._cached = functools.lru_cache(maxsize=settings.models.cache_size)(self._fetch)
        self._failed: dict[tuple[str, str], tuple[float, str]] = {}
        """(name, version) -> (when to try again, why it failed)."""

    def get(self, name: str, version: str) -> Version:
        """The version's model and reference; `FetchError` if they cannot be had (now)."""
        failed = self._failed.get((name, version))
        if failed is not None and self._clock() < failed[0]:
            raise FetchError(failed[1])
        try:
            found = self._cached(name, version)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, FetchError) else f"{type(exc).__name__}: {exc}"
            self._failed[(name, version)] = (self._clock() + RETRY_AFTER_SECONDS, reason)
            raise FetchError(reason) from exc
        self._failed.pop((name, version), None)
        return found

    def _fetch(self, name: str, version: str) -> Version:
        with tempfile.TemporaryDirectory(prefix="driftline-fetch-") as tmp:
            files = fetch(self._settings, name, version, Path(tmp))
            estimator = _read_model(self._settings, files["model"])
            return Version(
                LoadedModel(name, version, estimator), reference.read(files["reference"])
            )

    def reference(self, name: str, version: str) -> Reference:
        return self.get(name, version).reference

    def features(self, name: str, version: str, texts: list[str]) -> Features:
        return self.get(name, version).model.features(texts)


def fetched_model(settings: Settings, name: str, version: str) -> Any:
    """The estimator of a version, its files copied by a child (`ModelCache`'s loader)."""
    with tempfile.TemporaryDirectory(prefix="driftline-fetch-") as tmp:
        files = fetch(settings, name, version, Path(tmp), parts=("model",))
        return _read_model(settings, files["model"])


def _read_model(settings: Settings, folder: Path) -> Any:
    return with_threads(registry.read_model(folder), settings.models.threads)


def main(argv: list[str]) -> None:
    """Copy one version's files and print where they are (the child's side of `fetch`)."""
    name, version, folder, *parts = argv
    s = settings.load()
    logs.configure(s.log_level)
    copies = {
        "model": lambda: registry.download_model(s, name, version, Path(folder) / "model"),
        "reference": lambda: reference.download(s, name, version, Path(folder)),
    }
    wanted = parts[0].split(",") if parts else list(PARTS)
    print(json.dumps({part: str(copies[part]()) for part in wanted}))


if __name__ == "__main__":
    main(sys.argv[1:])
