"""Lake tables are derived from the message models: no field can be dropped on the way."""

from __future__ import annotations

import pytest

from driftline.tables import STREAMED, TABLE_FOR, LakeTable, columns_of, flatten
from driftline.topics import ALL_TOPICS, Message, ModelRef
from tests.factories import make_result


@pytest.mark.parametrize("table", STREAMED, ids=lambda t: t.name)
def test_every_message_field_is_a_column_or_deliberately_excluded(table: LakeTable) -> None:
    assert table.source is not None
    for field in table.source.model_fields:
        if field in table.excluded:
            continue
        prefixed = [c for c in table.columns if c == field or c.startswith(f"{field}_")]
        assert prefixed, f"{table.source.__name__}.{field} has no column in {table.name}"
    assert set(table.key) <= set(table.columns)


def test_a_row_has_exactly_the_columns_of_its_table() -> None:
    result = make_result(model=ModelRef(name="m", version="7"), experiment="e", arm="A")
    row = TABLE_FOR[type(result)].row(result)
    assert list(row) == list(TABLE_FOR[type(result)].columns)
    assert (row["model_name"], row["model_version"], row["arm"]) == ("m", "7", "A")
    assert isinstance(row["inference_id"], str)


def test_a_new_message_field_becomes_a_column() -> None:
    class Extended(Message):
        model: ModelRef
        score: float
        tags: list[str]

    assert columns_of(Extended) == {
        "model_name": "VARCHAR",
        "model_version": "VARCHAR",
        "score": "DOUBLE",
        "tags": "JSON",
    }
    row = flatten(Extended(model=ModelRef(name="m", version="1"), score=0.5, tags=["a"]))
    assert row == {"model_name": "m", "model_version": "1", "score": 0.5, "tags": ["a"]}


def test_every_topic_that_feeds_the_lake_has_one_table() -> None:
    fed = {t.schema for t in ALL_TOPICS} & set(TABLE_FOR)
    assert len(fed) == len(STREAMED)
