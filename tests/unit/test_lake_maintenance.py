"""Lake upkeep on real DuckLake files: compaction keeps rows, encryption and time travel;
expiry deletes the files of old snapshots; the lake writer compacts on its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

import lakehouse
from app import cli
from driftline import settings
from driftline.settings import Settings
from driftline.tables import FEEDBACK, INFERENCES
from flows.lakewriter import _LakePartition
from lakehouse import maintenance
from tests.factories import make_feedback, make_result

SECRET = "a sentence nobody may read off the disk"
BATCHES = 12


@pytest.fixture()
def lake(tmp_path: Path) -> Iterator[tuple[Settings, duckdb.DuckDBPyConnection]]:
    """A lake holding BATCHES small commits per table, as the writer leaves it."""
    s = settings.load(home=tmp_path)
    con = lakehouse.connect(s.lake)
    lakehouse.ensure_schema(con)
    for _ in range(BATCHES):
        results = [make_result(data=SECRET) for _ in range(5)]
        lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(r) for r in results])
        feedback = [make_feedback(r.inference_id, 1.0) for r in results]
        lakehouse.write_rows(con, FEEDBACK, [FEEDBACK.row(f) for f in feedback])
    yield s, con
    con.close()


def contents(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "SELECT inference_id, data, feedback FROM inferences_with_feedback ORDER BY inference_id"
    ).fetchall()


def parquet_files(s: Settings) -> list[Path]:
    return list(Path(s.lake.data_path).rglob("*.parquet"))


def test_compaction_merges_files_and_keeps_rows_encryption_and_time_travel(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
) -> None:
    s, con = lake
    before = contents(con)
    [(snapshot,)] = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchall()
    assert maintenance.data_files(con) == 2 * BATCHES
    assert maintenance.compact(con).files_merged == 2 * BATCHES - 2  # one file per table left
    assert maintenance.data_files(con) == 2
    assert contents(con) == before and len(before) == 5 * BATCHES
    assert all(SECRET.encode() not in f.read_bytes() for f in parquet_files(s))
    travel = f"SELECT count(*) FROM inferences AT (VERSION => {snapshot})"
    assert con.execute(travel).fetchall() == [(5 * BATCHES,)]
    assert maintenance.compact(con).files_merged == 0  # nothing left to merge


def test_expiry_deletes_the_files_only_old_snapshots_used(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
) -> None:
    s, con = lake
    before = contents(con)
    maintenance.compact(con)
    assert len(parquet_files(s)) == 2 * BATCHES + 2  # old files kept for time travel
    expired = maintenance.expire(con, older_than=timedelta(0))
    assert expired.files_deleted == 2 * BATCHES and expired.snapshots > 0
    assert len(parquet_files(s)) == 2
    assert contents(con) == before


def test_the_lake_writer_compacts_every_interval(tmp_path: Path) -> None:
    s = settings.load(home=tmp_path, lake_compact_seconds=1e-6)
    writer = lakehouse.connect(s.lake)
    lakehouse.ensure_schema(writer)
    writer.close()
    partition = _LakePartition(s, compacts=True)
    for _ in range(3):
        rows = [INFERENCES.row(make_result()) for _ in range(4)]
        partition.write_batch([(INFERENCES.name, rows)])
    partition.close()
    reader = lakehouse.connect(s.lake, read_only=True)
    assert maintenance.data_files(reader) == 1
    assert reader.execute("SELECT count(*) FROM inferences").fetchall() == [(12,)]
    reader.close()


def test_cli_compacts_and_expires_beside_an_open_writer(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s, con = lake
    monkeypatch.setenv("DRIFTLINE_HOME", str(s.home))
    assert cli.main(["lake", "compact", "--expire-days", "0"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files_before"] == 2 * BATCHES and report["files_merged"] == 2 * BATCHES - 2
    assert report["files_deleted"] == 2 * BATCHES and len(parquet_files(s)) == 2
    assert len(contents(con)) == 5 * BATCHES
