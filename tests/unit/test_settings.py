from __future__ import annotations

from pathlib import Path

import pytest

from driftline import settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    monkeypatch.setenv("DRIFTLINE_PARTITIONS", "6")
    monkeypatch.setenv("DRIFTLINE_LAKE_ENCRYPTED", "false")
    monkeypatch.setenv("DRIFTLINE_LAKE_BATCH_SECONDS", "2.5")
    s = settings.load()
    assert (s.home, s.partitions, s.lake_encrypted, s.lake_batch_seconds) == (
        tmp_path.resolve(),
        6,
        False,
        2.5,
    )


def test_stores_default_under_home(tmp_path: Path) -> None:
    s = settings.load(home=tmp_path)
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert s.catalog == f"sqlite:{tmp_path / 'lake' / 'catalog.sqlite'}"
    assert s.data_path.startswith(str(tmp_path))


def test_explicit_stores_win(tmp_path: Path) -> None:
    s = settings.load(home=tmp_path, lake_catalog="postgres:dbname=lake", lake_data_path="s3://b/")
    assert (s.catalog, s.data_path) == ("postgres:dbname=lake", "s3://b/")


def test_broker_list_splits_and_trims() -> None:
    assert settings.load(brokers="a:1, b:2,").broker_list == ["a:1", "b:2"]
