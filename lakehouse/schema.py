"""Create the lake's tables and views from their declarations in `driftline.tables`.

`ensure_schema` is safe to call often: it creates what is missing and adds the columns a newer
version declares, and replaces a view only when its definition changed (each DDL statement is a
new DuckLake snapshot).
"""

from __future__ import annotations

import duckdb

from driftline.tables import FEEDBACK, INFERENCES, INFERENCES_WITH_FEEDBACK, TABLES

VIEWS = {
    # One row per inference with every feedback score so far, oldest first. Feedback is its own
    # append-only table, so a score that arrives before its inference row is never lost: it
    # shows up here as soon as the inference row lands.
    INFERENCES_WITH_FEEDBACK: f"""
        SELECT i.*,
               coalesce(f.feedback, []::DOUBLE[]) AS feedback,
               f.feedback_mean
        FROM lake.{INFERENCES.name} i
        LEFT JOIN (
            SELECT inference_id,
                   list(feedback ORDER BY created_at, feedback_id) AS feedback,
                   avg(feedback) AS feedback_mean
            FROM lake.{FEEDBACK.name}
            GROUP BY inference_id
        ) f ON f.inference_id = i.inference_id
    """,
}


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables, columns and views in the attached lake."""
    for table in TABLES.values():
        cols = ", ".join(f'"{c}" {t}' for c, t in table.columns.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS lake.{table.name} ({cols})")
        existing = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() "
                "WHERE database_name = 'lake' AND table_name = ?",
                [table.name],
            ).fetchall()
        }
        for col, typ in table.columns.items():
            if col not in existing:
                con.execute(f'ALTER TABLE lake.{table.name} ADD COLUMN "{col}" {typ}')
    for name, body in VIEWS.items():
        # DuckDB stores a view's SQL normalised: compare with the same view made in memory.
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")
        wanted, stored = _view_sql(con, "temp", name), _view_sql(con, "lake", name)
        con.execute(f"DROP VIEW temp.{name}")
        if stored != wanted:
            con.execute(f"CREATE OR REPLACE VIEW lake.{name} AS {body}")


def _view_sql(con: duckdb.DuckDBPyConnection, database: str, name: str) -> str | None:
    found = con.execute(
        "SELECT sql FROM duckdb_views() WHERE database_name = ? AND view_name = ?",
        [database, name],
    ).fetchone()
    return None if found is None else str(found[0]).replace("TEMP ", "", 1)
