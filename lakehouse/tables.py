"""Every lake table: its columns, its idempotency key, and how a message becomes a row.

A table is declared once here; `ensure_schema` creates it (and adds columns a newer version
declares), and the writer de-duplicates on its key, so a re-delivered message never adds a row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb

from driftline.topics import (
    ABReport,
    Alert,
    DeadLetter,
    DriftReport,
    Feedback,
    InferenceResult,
    Message,
)

Row = dict[str, Any]


@dataclass(frozen=True)
class LakeTable:
    name: str
    columns: dict[str, str]
    """Column name -> DuckDB type, in table order."""
    key: tuple[str, ...]
    """Columns that identify a row: a row whose key is already stored is not inserted again."""
    row: Callable[[Any], Row]
    """Turns one message into one row."""


def _inference_row(m: InferenceResult) -> Row:
    return {
        "inference_id": str(m.inference_id),
        "created_at": m.created_at,
        "data": m.data,
        "subject": m.subject,
        "model_name": m.model.name if m.model else None,
        "model_version": m.model.version if m.model else None,
        "experiment": m.experiment,
        "arm": m.arm,
        "prediction": m.prediction,
        "label": m.label,
        "threshold": m.threshold,
        "scored_at": m.scored_at,
        "error": m.error,
    }


def _plain_row(m: Message) -> Row:
    row = m.model_dump()
    return {k: str(v) if k.endswith("_id") and v is not None else v for k, v in row.items()}


INFERENCES = LakeTable(
    "inferences",
    {
        "inference_id": "UUID",
        "created_at": "TIMESTAMPTZ",
        "data": "VARCHAR",
        "subject": "VARCHAR",
        "model_name": "VARCHAR",
        "model_version": "VARCHAR",
        "experiment": "VARCHAR",
        "arm": "VARCHAR",
        "prediction": "DOUBLE",
        "label": "INTEGER",
        "threshold": "DOUBLE",
        "scored_at": "TIMESTAMPTZ",
        "error": "VARCHAR",
    },
    key=("inference_id",),
    row=_inference_row,
)

FEEDBACK = LakeTable(
    "feedback",
    {
        "feedback_id": "UUID",
        "inference_id": "UUID",
        "feedback": "DOUBLE",
        "created_at": "TIMESTAMPTZ",
    },
    key=("feedback_id",),
    row=_plain_row,
)

DEADLETTERS = LakeTable(
    "deadletters",
    {
        "flow": "VARCHAR",
        "reason": "VARCHAR",
        "source_topic": "VARCHAR",
        "partition": "INTEGER",
        "offset": "BIGINT",
        "key": "VARCHAR",
        "payload_b64": "VARCHAR",
        "failed_at": "TIMESTAMPTZ",
    },
    key=("flow", "source_topic", "partition", "offset"),
    row=_plain_row,
)


def _flat_row(m: Message) -> Row:
    """Nested messages become flat columns: `{"model": {"name": ..}}` -> `model_name`."""
    out: Row = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}_{k}" if prefix else k, v)
        else:
            out[prefix] = value

    walk("", m.model_dump())
    return out


def _ab_row(m: ABReport) -> Row:
    row = _flat_row(m.model_copy(update={"arms": []}))
    row.pop("arms")
    row["arms"] = [a.model_dump(mode="json") for a in m.arms]
    return row


DRIFT_METRICS = LakeTable(
    "drift_metrics",
    {
        "model_name": "VARCHAR",
        "model_version": "VARCHAR",
        "window_start": "TIMESTAMPTZ",
        "window_end": "TIMESTAMPTZ",
        "emitted_at": "TIMESTAMPTZ",
        "n": "BIGINT",
        "share": "DOUBLE",
        "ks_d": "DOUBLE",
        "ks_p_value": "DOUBLE",
        "domain_auc": "DOUBLE",
        "domain_auc_threshold": "DOUBLE",
        "feature_drift": "BOOLEAN",
        "estimated_accuracy": "DOUBLE",
        "estimated_precision": "DOUBLE",
        "estimated_recall": "DOUBLE",
        "estimated_f1": "DOUBLE",
        "feedback_n": "BIGINT",
        "feedback_brier": "DOUBLE",
        "feedback_accuracy": "DOUBLE",
        "feedback_f1": "DOUBLE",
        "contradiction": "BOOLEAN",
    },
    key=("model_name", "model_version", "window_start", "window_end"),
    row=_flat_row,
)

AB_METRICS = LakeTable(
    "ab_metrics",
    {
        "experiment": "VARCHAR",
        "emitted_at": "TIMESTAMPTZ",
        "arms": "JSON",
        "test_arm_a": "VARCHAR",
        "test_arm_b": "VARCHAR",
        "test_p_value": "DOUBLE",
        "test_difference": "DOUBLE",
        "test_ci_lower": "DOUBLE",
        "test_ci_upper": "DOUBLE",
        "test_decision": "VARCHAR",
    },
    key=("experiment", "emitted_at"),
    row=_ab_row,
)

ALERTS = LakeTable(
    "alerts",
    {
        "alert_id": "VARCHAR",
        "model_name": "VARCHAR",
        "model_version": "VARCHAR",
        "metric": "VARCHAR",
        "value": "DOUBLE",
        "threshold": "DOUBLE",
        "window_end": "TIMESTAMPTZ",
        "message": "VARCHAR",
        "created_at": "TIMESTAMPTZ",
    },
    key=("alert_id",),
    row=_flat_row,
)

TABLES: dict[str, LakeTable] = {
    t.name: t for t in (INFERENCES, FEEDBACK, DEADLETTERS, DRIFT_METRICS, AB_METRICS, ALERTS)
}

# Which table each message type lands in.
TABLE_FOR: dict[type[Message], LakeTable] = {
    InferenceResult: INFERENCES,
    Feedback: FEEDBACK,
    DeadLetter: DEADLETTERS,
    DriftReport: DRIFT_METRICS,
    ABReport: AB_METRICS,
    Alert: ALERTS,
}

# Data sets, loaded in bulk by `driftline data load` (models.data), not by the lake writer.
# `row_id` is the row's position in its source, so a reload with the same seed is identical.
SENTIMENT_TRAIN = LakeTable(
    "sentiment_train",
    {
        "row_id": "BIGINT",
        "text": "VARCHAR",
        "label": "INTEGER",
        "split": "VARCHAR",
        "fold": "INTEGER",
    },
    key=("row_id",),
    row=dict,
)
SENTIMENT_MONITOR = LakeTable(
    "sentiment_monitor",
    {"row_id": "BIGINT", "text": "VARCHAR", "label": "INTEGER"},
    key=("row_id",),
    row=dict,
)
OOD_TEXTS = LakeTable(
    "ood_texts",
    {"row_id": "BIGINT", "text": "VARCHAR", "source": "VARCHAR"},
    key=("source", "row_id"),
    row=dict,
)
DATASETS: dict[str, LakeTable] = {
    t.name: t for t in (SENTIMENT_TRAIN, SENTIMENT_MONITOR, OOD_TEXTS)
}

VIEWS = {
    # One row per inference with every feedback score so far, oldest first. Feedback is its own
    # append-only table, so a score that arrives before its inference row is never lost: it
    # shows up here as soon as the inference row lands.
    "inferences_with_feedback": """
        SELECT i.*,
               coalesce(f.feedback, []::DOUBLE[]) AS feedback,
               f.feedback_mean
        FROM lake.inferences i
        LEFT JOIN (
            SELECT inference_id,
                   list(feedback ORDER BY created_at, feedback_id) AS feedback,
                   avg(feedback) AS feedback_mean
            FROM lake.feedback
            GROUP BY inference_id
        ) f ON f.inference_id = i.inference_id
    """,
}


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables, columns and views in the attached lake; safe to call often."""
    for table in (*TABLES.values(), *DATASETS.values()):
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
        con.execute(f"CREATE OR REPLACE VIEW lake.{name} AS {body}")
