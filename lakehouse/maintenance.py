"""Lake upkeep: merge the writer's many small files, and forget old snapshots on request.

The lake writer commits a batch every `DRIFTLINE_LAKE_BATCH_SECONDS`, one Parquet file per
table and commit, so a day of traffic leaves tens of thousands of small files for every query
to open. `compact` merges each table's adjacent small files into larger ones in one new
snapshot; rows, encryption and time travel are unchanged (the old files stay until their
snapshots expire). The lake writer runs it every `DRIFTLINE_LAKE_COMPACT_SECONDS`.

`expire` drops snapshots older than a given age and deletes the files only they used. It gives
up time travel to those snapshots, including the ones training runs record as their lineage
(`lake_snapshot_id`), so it runs only when asked (`driftline lake compact --expire-days N`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import duckdb

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_locked(action: Callable[[], T], retries: int = 5) -> T:
    """Run `action`, retrying with backoff while another process holds the SQLite catalog."""
    for attempt in range(retries + 1):
        try:
            return action()
        except duckdb.Error as exc:
            if "locked" not in str(exc).lower() or attempt == retries:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def data_files(con: duckdb.DuckDBPyConnection) -> int:
    """How many data files the current snapshot of the lake reads."""
    [(count,)] = con.execute(
        "SELECT count(*) FROM __ducklake_metadata_lake.ducklake_data_file "
        "WHERE end_snapshot IS NULL"
    ).fetchall()
    return int(count)


@dataclass(frozen=True)
class Compacted:
    files_before: int
    files_merged: int
    """How many files the merge took away."""


def compact(con: duckdb.DuckDBPyConnection) -> Compacted:
    """Merge adjacent small files of every table."""
    before = data_files(con)
    started = time.perf_counter()
    retry_locked(lambda: con.execute("CALL ducklake_merge_adjacent_files('lake')").fetchall())
    done = Compacted(before, before - data_files(con))
    log.info(
        "lake compacted",
        extra={
            "files_before": done.files_before,
            "merged": done.files_merged,
            "seconds": time.perf_counter() - started,
        },
    )
    return done


@dataclass(frozen=True)
class Expired:
    snapshots: int
    files_deleted: int


def expire(con: duckdb.DuckDBPyConnection, older_than: timedelta) -> Expired:
    """Drop snapshots older than `older_than` (never the current one) and their files."""
    cutoff = f"now() - INTERVAL '{int(older_than.total_seconds())} seconds'"
    snapshots = retry_locked(
        lambda: con.execute(
            f"CALL ducklake_expire_snapshots('lake', older_than => {cutoff})"
        ).fetchall()
    )
    files = retry_locked(
        lambda: con.execute(
            "CALL ducklake_cleanup_old_files('lake', cleanup_all => true)"
        ).fetchall()
    )
    log.info("lake snapshots expired", extra={"snapshots": len(snapshots), "files": len(files)})
    return Expired(len(snapshots), len(files))
