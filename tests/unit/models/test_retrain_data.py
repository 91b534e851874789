"""The retraining set on a real DuckLake: the training rows at the current snapshot plus the
feedback-labelled inferences, against a label computed independently from the messages."""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import pyarrow as pa

import lakehouse
from driftline import settings
from driftline.tables import FEEDBACK, INFERENCES, SENTIMENT_TRAIN
from models.retrain import read_at
from tests.factories import make_feedback, make_result


def test_feedback_labelled_inferences_join_the_train_split_at_the_snapshot(
    tmp_path: Path,
) -> None:
    s = settings.load(home=tmp_path)
    rng = random.Random(7)
    con = lakehouse.connect(s.lake)
    lakehouse.ensure_schema(con)
    train = pa.table(
        {
            "row_id": list(range(6)),
            "text": [f"tweet {i}" for i in range(6)],
            "label": [i % 2 for i in range(6)],
            "split": ["train"] * 4 + ["test"] * 2,
            "fold": [0, 1, 2, 0, None, None],
        }
    )
    con.register("staging", train)
    con.execute(f"INSERT INTO lake.{SENTIMENT_TRAIN.name} SELECT * FROM staging")
    results = [make_result(data=f"inference {i}") for i in range(40)]
    results.append(make_result(data="tweet 5"))  # a test text: never a train row
    shadow = make_result(data="shadowed", shadow_of=results[0].inference_id)
    scores = {
        r.inference_id: [rng.choice([0.0, 0.3, 0.6, 1.0]) for _ in range(rng.randint(0, 5))]
        for r in [*results, shadow]
    }
    lakehouse.write_rows(con, INFERENCES, [INFERENCES.row(r) for r in [*results, shadow]])
    feedback = [make_feedback(i, f) for i, fs in scores.items() for f in fs]
    lakehouse.write_rows(con, FEEDBACK, [FEEDBACK.row(f) for f in feedback])
    (snapshot,) = con.execute("SELECT max(snapshot_id) FROM lake.snapshots()").fetchone()
    con.close()

    lake, added = read_at(s, min_feedback=3, sample=None)

    expected = {  # the mean of at least 3 scores, >= 0.5 is positive
        r.data: int(sum(scores[r.inference_id]) / len(scores[r.inference_id]) >= 0.5)
        for r in results[:40]
        if len(scores[r.inference_id]) >= 3
    }
    new = lake.frame[lake.frame["row_id"] >= 6]
    assert lake.snapshot_id == snapshot and added == len(expected) == len(new) > 5
    assert dict(zip(new["text"], new["label"], strict=True)) == expected
    assert set(new["split"]) == {"train"} and set(new["fold"]) <= {0, 1, 2}
    assert len(lake.part("test")) == 2 and lake.frame["row_id"].is_unique
    assert uuid.UUID(str(results[0].inference_id))  # the shadow's own feedback is not used
