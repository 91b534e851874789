"""Idempotent batch inserts into the lake.

One call writes one batch of rows to one table in one DuckLake commit (one Parquet file).
Rows whose key is already in the table, or repeated within the batch, are skipped, so Kafka
re-delivery and Bytewax replay after a crash never duplicate a row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import duckdb
import pyarrow as pa

from driftline.tables import LakeTable, Row
from lakehouse.maintenance import retry_locked

log = logging.getLogger(__name__)


def _insert_sql(table: LakeTable) -> str:
    cols = ", ".join(f'"{c}"' for c in table.columns)
    casts = ", ".join(f's."{c}"::{t}' for c, t in table.columns.items())
    key = ", ".join(f'"{k}"' for k in table.key)
    on = " AND ".join(
        f't."{k}" IS NOT DISTINCT FROM s."{k}"::{table.columns[k]}' for k in table.key
    )
    return (
        f"INSERT INTO lake.{table.name} ({cols}) "
        f"SELECT {casts} FROM (SELECT DISTINCT ON ({key}) * FROM staging) s "
        f"WHERE NOT EXISTS (SELECT 1 FROM lake.{table.name} t WHERE {on})"
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
    staging = pa.Table.from_pylist([{c: r.get(c) for c in table.columns} for r in rows])
    sql = _insert_sql(table)

    def insert() -> tuple | None:
        con.register("staging", staging)
        try:
            return con.execute(sql).fetchone()
        finally:
            con.unregister("staging")

    inserted = retry_locked(insert, retries)
    count = int(inserted[0]) if inserted else 0
    log.debug("rows written", extra={"table": table.name, "rows": count, "offered": len(rows)})
    return count
