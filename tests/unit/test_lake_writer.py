"""The lake writer on real DuckLake files (sqlite catalog, encrypted Parquet) in a temp folder."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

import lakehouse
from driftline import settings
from driftline.settings import Settings
from driftline.tables import DEADLETTERS, FEEDBACK, INFERENCES
from driftline.topics import DeadLetter
from tests.factories import make_feedback, make_result


@pytest.fixture()
def lake(tmp_path: Path) -> Iterator[tuple[Settings, duckdb.DuckDBPyConnection]]:
    s = settings.load(home=tmp_path)
    con = lakehouse.connect(s.lake)
    lakehouse.ensure_schema(con)
    yield s, con
    con.close()


def test_redelivered_rows_are_written_once(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
) -> None:
    _, con = lake
    rows = [INFERENCES.row(make_result()) for _ in range(50)]
    assert lakehouse.write_rows(con, INFERENCES, rows + rows[:10]) == 50  # repeated in a batch
    assert lakehouse.write_rows(con, INFERENCES, rows[25:] + rows[:5]) == 0  # replayed later
    assert con.execute(
        "SELECT count(*), count(DISTINCT inference_id) FROM inferences"
    ).fetchone() == (
        50,
        50,
    )


def test_a_replay_among_newer_and_older_rows_is_still_found(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
) -> None:
    """The writer looks for stored copies only within the batch's range of `created_at`: a
    replayed row inside a batch that spans older and newer rows is still found."""
    _, con = lake
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    stored = [make_result(created_at=now + timedelta(minutes=m)) for m in range(0, 60, 10)]
    lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(r) for r in stored])
    mixed = [
        make_result(created_at=now - timedelta(days=30)),
        stored[3],
        make_result(created_at=now + timedelta(days=1)),
    ]
    assert lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(r) for r in mixed]) == 2
    assert con.execute("SELECT count(DISTINCT inference_id) FROM inferences").fetchone() == (8,)


def test_rows_without_a_stamp_are_deduplicated_too(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
) -> None:
    """A dead letter from outside Kafka has no offset (its stamp): it is still stored once."""
    _, con = lake
    letters = [
        DeadLetter.of("gateway", "bad", b"x"),
        DeadLetter.of("inference", "bad", b"y", source_topic="t", partition=0, offset=7),
    ]
    rows = [DEADLETTERS.row(d) for d in letters]
    assert lakehouse.write_rows(con, DEADLETTERS, rows) == 2
    assert lakehouse.write_rows(con, DEADLETTERS, rows[:1]) == 0
    assert lakehouse.write_rows(con, DEADLETTERS, rows) == 0
    assert con.execute("SELECT count(*) FROM deadletters").fetchone() == (2,)


def test_feedback_before_its_inference_shows_up_once_the_row_lands(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
) -> None:
    _, con = lake
    first = make_result()
    early = [make_feedback(first.inference_id, 1.0), make_feedback(first.inference_id, 0.0)]
    lakehouse.write_rows(con, FEEDBACK, [FEEDBACK.row(f) for f in early])
    view = "SELECT feedback, feedback_mean FROM inferences_with_feedback WHERE inference_id = ?"
    assert con.execute(view, [str(first.inference_id)]).fetchall() == []
    lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(first)])
    assert con.execute(view, [str(first.inference_id)]).fetchall() == [([1.0, 0.0], 0.5)]


def test_inference_without_feedback_has_an_empty_list(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
) -> None:
    _, con = lake
    only = make_result()
    lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(only)])
    assert con.execute("SELECT feedback FROM inferences_with_feedback").fetchall() == [([],)]


def test_a_second_read_only_connection_sees_committed_rows(
    lake: tuple[Settings, duckdb.DuckDBPyConnection],
) -> None:
    s, con = lake
    lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(make_result(data="shared"))])
    reader = lakehouse.connect(s.lake, read_only=True)
    assert reader.execute("SELECT data FROM inferences").fetchall() == [("shared",)]
    with pytest.raises(duckdb.Error):
        reader.execute("DELETE FROM inferences")
    reader.close()


def test_user_data_is_encrypted_at_rest(lake: tuple[Settings, duckdb.DuckDBPyConnection]) -> None:
    s, con = lake
    secret = "my very private sentence"
    lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(make_result(data=secret))])
    files = list(Path(s.lake.data_path).rglob("*.parquet"))
    assert files, "one small insert still goes to a Parquet file (inlining is off)"
    assert all(secret.encode() not in f.read_bytes() for f in files)
    # The catalog holds the file keys and DuckLake's plain-text min/max column statistics, so
    # it is the secret to guard: driftline makes it readable by its owner only.
    catalog = Path(s.lake.catalog.removeprefix("sqlite:"))
    assert catalog.stat().st_mode & 0o077 == 0
    with pytest.raises(duckdb.Error, match="encrypted"):
        duckdb.sql(f"SELECT * FROM '{files[0]}'").fetchall()


def test_schema_is_idempotent(lake: tuple[Settings, duckdb.DuckDBPyConnection]) -> None:
    _, con = lake
    lakehouse.ensure_schema(con)
    lakehouse.ensure_schema(con)
    assert {r[0] for r in con.execute("SHOW TABLES").fetchall()} >= {
        "inferences",
        "feedback",
        "deadletters",
        "inferences_with_feedback",
    }


def test_a_lake_made_before_shadow_arms_gains_the_column_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    s = settings.load(home=tmp_path)
    con = lakehouse.connect(s.lake)
    old = {c: t for c, t in INFERENCES.columns.items() if c != "shadow_of"}
    con.execute(f"CREATE TABLE lake.inferences ({', '.join(f'{c} {t}' for c, t in old.items())})")
    answered = make_result()
    con.execute(
        "INSERT INTO lake.inferences (inference_id, created_at, data, prediction) "
        "VALUES (?, ?, ?, ?)",
        [str(answered.inference_id), answered.created_at, answered.data, answered.prediction],
    )
    lakehouse.ensure_schema(con)  # what the new lake writer does when it starts
    shadow = make_result(shadow_of=answered.inference_id, created_at=answered.created_at)
    lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(shadow)])
    lakehouse.write_rows(con, FEEDBACK, [FEEDBACK.row(make_feedback(answered.inference_id, 1.0))])
    rows = con.execute(
        "SELECT i.inference_id, s.inference_id, i.feedback FROM inferences_with_feedback i "
        "LEFT JOIN inferences s ON s.shadow_of = i.inference_id WHERE i.shadow_of IS NULL"
    ).fetchall()
    con.close()
    assert rows == [(answered.inference_id, shadow.inference_id, [1.0])]
