"""Every lake table: its name, its columns, its idempotency key, and how a message becomes a row.

The columns of a table fed by a topic are derived from that topic's message model, so a field
added to a message is a column of its table too, and the writer cannot drop it unseen. Nested
messages become prefixed columns (`model.name` -> `model_name`), lists become JSON. Data-set
tables, loaded in bulk by `driftline data load`, declare their columns here by hand.

>>> INFERENCES.columns["model_version"], INFERENCES.columns["created_at"]
('VARCHAR', 'TIMESTAMPTZ')
>>> list(DRIFT_METRICS.columns)[-4:]
['feedback_brier', 'feedback_accuracy', 'feedback_f1', 'contradiction']
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Union
from uuid import UUID

from driftline.topics import (
    ABReport,
    Alert,
    DeadLetter,
    DriftReport,
    Feedback,
    InferenceResult,
    Message,
    RolloutDecision,
)

Row = dict[str, Any]

_SQL_TYPES: dict[Any, str] = {
    UUID: "UUID",
    datetime: "TIMESTAMPTZ",
    str: "VARCHAR",
    float: "DOUBLE",
    int: "BIGINT",
    bool: "BOOLEAN",
}


def _scalar(annotation: Any) -> Any:
    """The type under `Annotated[...]` and `X | None`."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar(annotation)
    return annotation


def columns_of(schema: type[Message], exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """Column name -> DuckDB type for every field of `schema`, nested messages flattened."""
    columns: dict[str, str] = {}
    for name, info in schema.model_fields.items():
        if name in exclude:
            continue
        kind = _scalar(info.annotation)
        if isinstance(kind, type) and issubclass(kind, Message):
            columns |= {f"{name}_{c}": t for c, t in columns_of(kind).items()}
        elif typing.get_origin(kind) in (list, tuple):
            columns[name] = "JSON"
        elif typing.get_origin(kind) is typing.Literal:  # names such as a rollout's status
            columns[name] = "VARCHAR"
        else:
            columns[name] = _SQL_TYPES[kind]
    return columns


def flatten(message: Message) -> Row:
    """One message as one row: nested messages prefixed, lists as JSON-ready values.

    >>> from driftline.topics import ModelRef
    >>> m = Alert(alert_id="a", model=ModelRef(name="m", version="1"), metric="ks_d", value=0.3,
    ...           window_end="2026-11-29T10:00:00Z", message="", created_at="2026-11-29T10:00Z")
    >>> {k: v for k, v in flatten(m).items() if k.startswith("model")}
    {'model_name': 'm', 'model_version': '1'}
    """
    row: Row = {}
    for name, value in message:
        if isinstance(value, Message):
            row |= {f"{name}_{k}": v for k, v in flatten(value).items()}
        elif isinstance(value, list | tuple):
            row[name] = [v.model_dump(mode="json") if isinstance(v, Message) else v for v in value]
        else:
            row[name] = str(value) if isinstance(value, UUID) else value
    return row


@dataclass(frozen=True)
class LakeTable:
    name: str
    columns: dict[str, str]
    """Column name -> DuckDB type, in table order."""
    key: tuple[str, ...]
    """Columns that identify a row: a row whose key is already stored is not inserted again."""
    stamp: str
    """A column every copy of a row shares (in the key, or stamped once where the row is born).
    The writer looks for stored copies of a batch's rows only within the batch's range of it,
    so what a batch costs does not grow with the table."""
    source: type[Message] | None = None
    """The message each row comes from (None for data sets)."""
    excluded: tuple[str, ...] = field(default=())
    """Fields of `source` that are not stored."""

    @classmethod
    def of(
        cls, name: str, source: type[Message], key: tuple[str, ...], stamp: str, **kw: Any
    ) -> LakeTable:
        excluded = kw.pop("excluded", ())
        return cls(name, columns_of(source, excluded), key, stamp, source, excluded, **kw)

    def row(self, message: Message) -> Row:
        """The row of `message`, with exactly this table's columns (an absent nested message,
        such as an A/B report without a test yet, leaves its columns empty)."""
        flat = flatten(message)
        return {c: flat.get(c) for c in self.columns}


INFERENCES = LakeTable.of(
    "inferences",
    InferenceResult,
    key=("inference_id",),
    stamp="created_at",  # stamped by the gateway, copied by the inference flow
    excluded=("log_to_lakehouse", "probe"),  # filters: opted-out results and probes are not kept
)
FEEDBACK = LakeTable.of("feedback", Feedback, key=("feedback_id",), stamp="created_at")
DEADLETTERS = LakeTable.of(
    "deadletters", DeadLetter, key=("flow", "source_topic", "partition", "offset"), stamp="offset"
)
DRIFT_METRICS = LakeTable.of(
    "drift_metrics",
    DriftReport,
    key=("model_name", "model_version", "window_start", "window_end"),
    stamp="window_end",
)
AB_METRICS = LakeTable.of(
    "ab_metrics", ABReport, key=("experiment", "emitted_at", "updates"), stamp="emitted_at"
)
ALERTS = LakeTable.of("alerts", Alert, key=("alert_id",), stamp="window_end")  # id of the window
# Rollouts (issue 13, part 2): one row per decision; a replayed decision has the same id and time.
ROLLOUTS = LakeTable.of("rollouts", RolloutDecision, key=("decision_id",), stamp="created_at")

STREAMED: tuple[LakeTable, ...] = (
    INFERENCES,
    FEEDBACK,
    DEADLETTERS,
    DRIFT_METRICS,
    AB_METRICS,
    ALERTS,
    ROLLOUTS,
)
"""Tables the lake writer fills from topics."""
TABLE_FOR: dict[type[Message], LakeTable] = {t.source: t for t in STREAMED if t.source}

# Data sets, loaded in bulk by `driftline data load`, not by the lake writer. `row_id` is the
# row's position in its source, so a reload with the same seed is identical.
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
    stamp="row_id",
)
SENTIMENT_MONITOR = LakeTable(
    "sentiment_monitor",
    {"row_id": "BIGINT", "text": "VARCHAR", "label": "INTEGER"},
    key=("row_id",),
    stamp="row_id",
)
OOD_TEXTS = LakeTable(
    "ood_texts",
    {"row_id": "BIGINT", "text": "VARCHAR", "source": "VARCHAR"},
    key=("source", "row_id"),
    stamp="row_id",
)
DATASETS: tuple[LakeTable, ...] = (SENTIMENT_TRAIN, SENTIMENT_MONITOR, OOD_TEXTS)

INFERENCES_WITH_FEEDBACK = "inferences_with_feedback"
"""The view of each inference with its feedback scores (`lakehouse.schema`)."""

TABLES: dict[str, LakeTable] = {t.name: t for t in (*STREAMED, *DATASETS)}
