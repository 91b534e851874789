"""Idempotent batch inserts into the lake.

One call writes one batch of rows to one table in one DuckLake commit (one Parquet file).
Rows whose key is already in the table, or repeated within the batch, are skipped, so Kafka
re-delivery and Bytewax replay after a crash never duplicate a row.

Stored copies are looked for only among rows whose `stamp` (a column every copy of a row
shares, such as the gateway's `created_at`) lies within the batch's range of it. DuckLake keeps
each file's min and max of every column, so the files outside that range are never opened, and
a batch costs the same whether the table holds ten thousand rows or ten million
(`bench/lake_writer.py`).

The batch reaches DuckDB as one JSON text, parsed into typed rows by DuckDB's `from_json`: as
fast as staging it as an Arrow table, without pyarrow (57 MB in the lake writer). Not as Python
lists: DuckDB looks at every Python value it converts for a pandas missing value, importing
pandas each time, which in a process that keeps pandas out fails each time (1,600 failed imports
for 100 rows, 40% more time).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import duckdb
import orjson

from driftline.tables import LakeTable, Row
from lakehouse.maintenance import retry_locked

log = logging.getLogger(__name__)


def _insert_sql(table: LakeTable, with_nulls: bool) -> str:
    """The insert of a batch; its parameters are the batch as JSON text, then its lowest and
    highest stamp (constants, so the scan of stored rows skips the files outside them)."""
    cols = ", ".join(f'"{c}"' for c in table.columns)
    structure = json.dumps([table.columns])  # a list of rows, each column with its SQL type
    staging = f"SELECT unnest(from_json(?::JSON, '{structure}'), max_depth := 2)"
    casts = ", ".join(f's."{c}"::{t}' for c, t in table.columns.items())
    key = ", ".join(f'"{k}"' for k in table.key)
    stamp, stamp_type = table.stamp, table.columns[table.stamp]
    in_range = f't."{stamp}" BETWEEN ?::{stamp_type} AND ?::{stamp_type}'
    if with_nulls:
        in_range = f'({in_range} OR t."{stamp}" IS NULL)'
    on = " AND ".join(
        f't."{k}" IS NOT DISTINCT FROM s."{k}"::{table.columns[k]}' for k in table.key
    )
    return (
        f"INSERT INTO lake.{table.name} ({cols}) "
        f"SELECT {casts} FROM (SELECT DISTINCT ON ({key}) * FROM ({staging})) s "
        f"WHERE NOT EXISTS (SELECT 1 FROM lake.{table.name} t WHERE {in_range} AND {on})"
    )


def write_rows(
    con: duckdb.DuckDBPyConnection,
    table: LakeTable,
    rows: Sequence[Row],
    retries: int = 5,
) -> int:
    """Insert `rows` that are not stored yet; returns how many were new.

    A SQLite catalog allows one committing process at a time, so a "database is locked" from a
    concurrent writer (e.g. `driftline data load`) is retried with backoff.
    """
    if not rows:
        return 0
    stamps = [r[table.stamp] for r in rows if r.get(table.stamp) is not None]
    sql = _insert_sql(table, with_nulls=len(stamps) < len(rows))
    # All stamps missing: a range that matches nothing, only the NULL-stamped rows are looked at.
    stamp_range = [min(stamps), max(stamps)] if stamps else [None, None]
    batch = orjson.dumps([{c: r.get(c) for c in table.columns} for r in rows]).decode()
    parameters = [batch, *stamp_range]
    inserted = retry_locked(lambda: con.execute(sql, parameters).fetchone(), retries)
    count = int(inserted[0]) if inserted else 0
    log.debug("rows written", extra={"table": table.name, "rows": count, "offered": len(rows)})
    return count
