"""Lake writer flow: results, feedback, monitoring reports and dead letters -> DuckLake.

    python -m bytewax.run flows.lakewriter:flow

Rows are collected per table until `DRIFTLINE_LAKE_BATCH_SIZE` rows or
`DRIFTLINE_LAKE_BATCH_SECONDS` seconds, whichever comes first, then written in one commit. The
writer de-duplicates on each table's key, so the replay after a crash (Bytewax recovery
re-reads about one snapshot interval) never adds a row twice.

Rows go to `DRIFTLINE_LAKE_WRITERS` sink partitions (writers), each with its own connection and
commits, spread over the workers and processes of the flow's cluster. A row's writer is a hash
of its key, so two copies of one row always meet in one writer, where the de-duplication sees
them. A SQLite catalog takes one committing process at a time, so it gets one writer; a
PostgreSQL catalog takes several. Every `DRIFTLINE_LAKE_COMPACT_SECONDS` the first writer also
merges the small files the batches leave (`lakehouse.maintenance`). The lake and its tables are
created when the sink starts, so readers can query them before any data arrives.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.operators import StatefulLogic
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition

import lakehouse
from driftline.clock import Clock, as_utc, wall_clock
from driftline.imports import keep_out
from driftline.settings import Settings
from driftline.tables import TABLE_FOR, TABLES, Row
from driftline.topics import (
    AB,
    ALERTS,
    DEADLETTER,
    DRIFT,
    FEEDBACK,
    RESULTS,
    ROLLOUT,
    DeadLetter,
    InferenceResult,
)
from flows.metrics import LAKE_DUPLICATES, LAKE_ROWS
from flows.wiring import Parsed, configured, consume, publish, settled, to_deadletter
from lakehouse import maintenance

log = logging.getLogger(__name__)
TOPICS = [RESULTS, FEEDBACK, DEADLETTER, DRIFT, AB, ALERTS, ROLLOUT]
Batch = tuple[str, list[Row]]


def to_row(parsed: Parsed) -> tuple[str, Row] | None:
    """(table name, row) for a message worth keeping; None for probes and opted-out results."""
    message = parsed.message
    if isinstance(message, InferenceResult) and (message.probe or not message.log_to_lakehouse):
        return None
    table = TABLE_FOR[type(message)]
    return table.name, table.row(message)


def writer_of(table: str, row: Row, writers: int) -> int:
    """The writer a row goes to: a stable hash of its table and key, the same in every process.

    >>> writer_of("inferences", {"inference_id": "a"}, 1)
    0
    >>> len({writer_of("inferences", {"inference_id": str(i)}, 2) for i in range(20)})
    2
    """
    key = repr([table, *(row[c] for c in TABLES[table].key)]).encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") % writers


TableRow = tuple[str, Row]


class BatchLogic(StatefulLogic[TableRow, list[TableRow], tuple[tuple[TableRow, ...], float]]):
    """The rows of one writer and table, until `size` of them or until the oldest is `seconds`
    old. Bytewax's `collect` restarted its timeout at every row, so under a steady trickle a
    batch waited for `size` rows (4 requests/s reached the lake only when they stopped), and it
    deep-copied its rows at every snapshot, where a buffered row never changes."""

    def __init__(self, size: int, seconds: float, resume: Any, clock: Clock = wall_clock) -> None:
        self.size, self.seconds, self.clock = size, seconds, clock
        self.rows: list[TableRow] = []
        self.due: float | None = None
        if isinstance(resume, tuple):
            self.rows, self.due = list(resume[0]), resume[1]
        elif resume is not None:  # the state of Bytewax's `collect`, which this step was
            self.rows, self.due = list(resume.acc), clock()

    def on_item(self, value: TableRow) -> tuple[list[list[TableRow]], bool]:
        if not self.rows:
            self.due = self.clock() + self.seconds
        self.rows.append(value)
        if len(self.rows) >= self.size:
            return [self.rows], StatefulLogic.DISCARD
        return [], StatefulLogic.RETAIN

    def on_notify(self) -> tuple[list[list[TableRow]], bool]:
        return [self.rows], StatefulLogic.DISCARD

    def on_eof(self) -> tuple[list[list[TableRow]], bool]:
        return [self.rows], StatefulLogic.DISCARD

    def notify_at(self) -> datetime | None:
        return None if self.due is None else as_utc(self.due)

    def snapshot(self) -> tuple[tuple[TableRow, ...], float]:
        assert self.due is not None  # a key is snapshotted only while it holds rows
        return tuple(self.rows), self.due


class _LakePartition(StatefulSinkPartition[Batch, None]):
    def __init__(self, settings: Settings, compacts: bool) -> None:
        self._lake = settings.lake
        self._con = lakehouse.connect(self._lake)
        lakehouse.ensure_schema(self._con)
        self._compact_every = settings.lake.compact_seconds if compacts else 0.0
        self._compacted_at = time.monotonic()

    def write_batch(self, values: list[Batch]) -> None:
        for table_name, rows in values:
            written = lakehouse.write_rows(self._con, TABLES[table_name], rows)
            LAKE_ROWS.labels(table_name).inc(written)
            LAKE_DUPLICATES.labels(table_name).inc(len(rows) - written)
            log.info(
                "batch written",
                extra={"table": table_name, "rows": written, "duplicates": len(rows) - written},
            )
        if self._compact_every > 0 and time.monotonic() - self._compacted_at >= self._compact_every:
            # Here, not in another process: the SQLite catalog takes one committer at a time.
            maintenance.compact(self._con)
            # A fresh connection: DuckDB keeps the merge's buffers and the catalog it read, and
            # a writer that kept one connection grew by 20-40 MB a merge (a 30-minute soak; 300
            # batches of 200 rows and a merge, 8 times: 303 to 587 MB, and 240-244 reconnecting).
            self._con.close()
            self._con = lakehouse.connect(self._lake)
            self._compacted_at = time.monotonic()

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._con.close()


class LakeSink(FixedPartitionedSink[Batch, None]):
    """One partition per writer; Bytewax spreads them over the cluster's workers."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def list_parts(self) -> list[str]:
        return [f"writer-{i}" for i in range(self._settings.lake.writers)]

    def build_part(self, step_id: str, for_part: str, resume_state: None) -> _LakePartition:
        return _LakePartition(self._settings, compacts=for_part == "writer-0")


def not_from_deadletter_topic(settings: Settings) -> Callable[[DeadLetter], bool]:
    """An unreadable message *on* the dead-letter topic is only logged: re-publishing it there
    would loop forever."""
    deadletter_topic = DEADLETTER.name(settings.kafka)
    return lambda letter: letter.source_topic != deadletter_topic


def build(settings: Settings) -> Dataflow:
    flow = Dataflow("lakewriter")
    parsed, dead = consume(flow, settings, TOPICS)
    rows = op.filter_map("to_row", parsed, to_row)
    writers = settings.lake.writers

    def writer_and_table(table_row: tuple[str, Row]) -> str:
        table, row = table_row
        return f"writer-{writer_of(table, row, writers)}/{table}"

    size, seconds = settings.lake.batch_size, settings.lake.batch_seconds
    batches = op.stateful(
        "batch",
        op.key_on("by_writer_and_table", rows, writer_and_table),
        lambda resume: BatchLogic(size, seconds, resume),
    )

    def to_writer(kv: tuple[str, list[tuple[str, Row]]]) -> tuple[str, Batch]:
        writer, table = kv[0].split("/")
        return writer, (table, [row for _, row in kv[1]])

    op.output("lake", op.map("to_writer", batches, to_writer), LakeSink(settings))
    dead = op.filter("not_looping", dead, not_from_deadletter_topic(settings))
    publish("dead", op.map("dead_out", dead, to_deadletter), settings)
    return flow


def flow() -> Dataflow:
    """The lake writer with the configured settings
    (`python -m bytewax.run flows.lakewriter:flow`). DuckDB imports pandas and pyarrow to
    check whether a query parameter is a DataFrame or an Arrow table; the writer passes JSON
    text (`lakehouse.writer`): both kept out, 60 MB less (`driftline.imports`)."""
    keep_out("pandas", "pyarrow")
    return settled(build(configured()))
