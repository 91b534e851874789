"""Benchmark of the lake writer: what one batch costs as the table grows, and rows/s sustained.

    .venv/bin/python -m bench.lake_writer [--sizes 10000,1000000,10000000] [--batch 1000]

On a fresh DuckLake (SQLite catalog, encrypted Parquet, as `driftline up` makes it) in a temp
folder, the `inferences` table is grown to each size in turn (older rows, bulk-inserted in
files of up to 1M rows, then merged as the writer's compaction would), and at each size:
1. one batch of `--batch` new rows written by `lakehouse.write_rows` (the writer's insert,
   which looks for stored copies only within the batch's `created_at` range), median of
   `--repeat` batches, next to the same batch replayed (every row already stored: nothing new);
2. the same new batch by the whole-table anti-join the writer used before (the baseline);
then rows/s sustained by back-to-back batches of `--sustained-batch` rows, as the lake writer
commits them under load (`DRIFTLINE_LAKE_BATCH_SIZE`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import duckdb
import pyarrow as pa

import lakehouse
from driftline import settings
from driftline.tables import INFERENCES, Row
from lakehouse import maintenance

FILE_ROWS = 1_000_000
START = datetime(2026, 1, 1, tzinfo=UTC)


def fill(con: duckdb.DuckDBPyConnection, have: int, want: int) -> None:
    """Grow `inferences` from `have` to `want` rows, one second apart from START."""
    while have < want:
        n = min(FILE_ROWS, want - have)
        con.execute(
            "INSERT INTO lake.inferences (inference_id, created_at, data, model_name, "
            "model_version, prediction, label, scored_at) "
            "SELECT uuid(), ?::TIMESTAMPTZ + to_seconds(i), 'text ' || i, 'm', '1', 0.5, 1, "
            "?::TIMESTAMPTZ + to_seconds(i) FROM range(?, ?) t(i)",
            [START, START, have, have + n],
        )
        have += n
    maintenance.compact(con)


def new_rows(n: int, at: datetime) -> list[Row]:
    """`n` rows as the writer gets them from `inference.results`, stamped from `at` on."""
    return [
        {
            "inference_id": str(uuid.uuid4()),
            "created_at": at + timedelta(milliseconds=i),
            "data": f"new {i}",
            "model_name": "m",
            "model_version": "1",
            "prediction": 0.8,
            "label": 1,
            "scored_at": at + timedelta(milliseconds=i),
        }
        for i in range(n)
    ]


def whole_table_anti_join(con: duckdb.DuckDBPyConnection, rows: list[Row]) -> None:
    """The baseline: the writer's insert before, against every stored key."""
    staging = pa.Table.from_pylist([{c: r.get(c) for c in INFERENCES.columns} for r in rows])
    cols = ", ".join(f'"{c}"' for c in INFERENCES.columns)
    casts = ", ".join(f's."{c}"::{t}' for c, t in INFERENCES.columns.items())
    con.register("staging", staging)
    con.execute(
        f"INSERT INTO lake.inferences ({cols}) SELECT {casts} FROM "
        "(SELECT DISTINCT ON (inference_id) * FROM staging) s WHERE NOT EXISTS "
        "(SELECT 1 FROM lake.inferences t WHERE t.inference_id = s.inference_id::UUID)"
    )
    con.unregister("staging")


def median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000,10000000")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--sustained-batch", type=int, default=10_000)
    parser.add_argument("--sustained-seconds", type=float, default=20.0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory() as home:
        con = lakehouse.connect(settings.load(home=Path(home)).lake)
        lakehouse.ensure_schema(con)
        have, clock = 0, START + timedelta(seconds=max(sizes) + 1)
        print(f"batch of {args.batch} new rows, median of {args.repeat}; ms per batch")
        print(f"{'rows stored':>12} {'new':>8} {'replayed':>9} {'whole-table':>12} {'ratio':>6}")
        firsts: list[float] = []
        for size in sizes:
            fill(con, have, size)
            have = size

            def batch() -> list[Row]:
                nonlocal clock
                clock += timedelta(seconds=args.batch)
                return new_rows(args.batch, clock)

            replay = batch()
            lakehouse.write_rows(con, INFERENCES, replay)
            new = median_ms(lambda: lakehouse.write_rows(con, INFERENCES, batch()), args.repeat)
            again = median_ms(partial(lakehouse.write_rows, con, INFERENCES, replay), args.repeat)
            old = median_ms(lambda: whole_table_anti_join(con, batch()), args.repeat)
            have += args.batch * (2 * args.repeat + 1)
            firsts.append(new)
            print(f"{size:>12,} {new:>8.1f} {again:>9.1f} {old:>12.1f} {old / new:>5.1f}x")
        print(f"per-batch cost, largest table / smallest: {firsts[-1] / firsts[0]:.2f}x")

        written, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.sustained_seconds:
            clock += timedelta(seconds=args.sustained_batch)
            written += lakehouse.write_rows(con, INFERENCES, new_rows(args.sustained_batch, clock))
        elapsed = time.perf_counter() - started
        print(
            f"sustained, batches of {args.sustained_batch:,} rows on {have:,} stored: "
            f"{written / elapsed:,.0f} rows/s ({written:,} rows in {elapsed:.1f} s)"
        )
        con.close()


if __name__ == "__main__":
    main()
