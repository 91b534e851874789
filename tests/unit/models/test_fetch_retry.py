"""A version the monitor cannot fetch is not fetched again in every micro-batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftline import settings
from models import fetch
from models.fetch import RETRY_AFTER_SECONDS, FetchedVersions, FetchError


def test_a_failed_fetch_is_answered_from_memory_until_it_is_due_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[tuple[str, str]] = []

    def failing(_settings: Any, name: str, version: str, _folder: Path) -> dict[str, Path]:
        attempts.append((name, version))
        raise FetchError(f"fetching {name} version {version} failed: no such version")

    monkeypatch.setattr(fetch, "fetch", failing)
    now = [0.0]
    versions = FetchedVersions(settings.load(home=tmp_path), clock=lambda: now[0])
    for _ in range(3):  # three micro-batches in a row: one child
        with pytest.raises(FetchError, match="m version 7 failed: no such version"):
            versions.get("m", "7")
    assert attempts == [("m", "7")]
    now[0] = RETRY_AFTER_SECONDS - 0.1
    with pytest.raises(FetchError):
        versions.get("m", "7")
    assert len(attempts) == 1
    now[0] = RETRY_AFTER_SECONDS
    with pytest.raises(FetchError):
        versions.get("m", "7")
    assert len(attempts) == 2  # due again: a new attempt
    with pytest.raises(FetchError):
        versions.get("m", "8")  # another version is its own
    assert attempts[-1] == ("m", "8")
