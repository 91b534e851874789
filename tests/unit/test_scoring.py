"""The inference flow's scoring step and the lake writer's row filter, on in-memory pieces."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np

from driftline.ab import Arm
from driftline.ab.routing import Routed
from driftline.clock import utc_now
from driftline.topics import RESULTS, InferenceRequest, InferenceResult
from flows.inference import Scorer
from flows.lakewriter import to_row
from flows.wiring import Parsed
from models.serving import LoadedModel, ModelNotFound


@dataclass
class CountingEstimator:
    calls: list[int] = field(default_factory=list)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        self.calls.append(len(texts))
        p = np.array([0.9 if "love" in t else 0.2 for t in texts])
        return np.column_stack([1 - p, p])


class FixedCache:
    def __init__(self, model: LoadedModel | None) -> None:
        self.model = model

    def get(self, name: str, alias: str) -> LoadedModel:
        if self.model is None:
            raise ModelNotFound(f"no registered model {name!r} with alias {alias!r}")
        return self.model

    def get_version(self, name: str, version: str) -> LoadedModel:
        return self.get(name, version)


def parsed(text: str, **changes: object) -> Routed:
    values = {"inference_id": uuid.uuid4(), "created_at": utc_now(), "data": text}
    arm = Arm(name="A", model="m", alias="champion", weight=1)
    return Routed(InferenceRequest(**(values | changes)), arm, "default")


def test_a_micro_batch_costs_one_predict_call() -> None:
    estimator = CountingEstimator()
    scorer = Scorer(0.5, FixedCache(LoadedModel("m", "2", estimator)))
    batch = [parsed("i love it"), parsed("meh"), parsed("love love")]
    out = scorer(batch)
    assert estimator.calls == [3]
    assert [o.topic for o in out] == [RESULTS] * 3
    results = [o.message for o in out]
    assert [r.label for r in results] == [1, 0, 1]
    assert [r.inference_id for r in results] == [p.request.inference_id for p in batch]
    assert {(r.experiment, r.arm) for r in results} == {("default", "A")}
    assert all(r.model.version == "2" and r.error is None for r in results)


def test_requests_that_cannot_be_scored_get_a_result_with_the_reason() -> None:
    out = Scorer(0.5, FixedCache(None))([parsed("x")])
    assert out[0].message.prediction is None
    assert "no registered model" in out[0].message.error


def test_probes_and_opted_out_results_stay_out_of_the_lake() -> None:
    scorer = Scorer(0.5, FixedCache(LoadedModel("m", "1", CountingEstimator())))
    kept, probe, opted_out = (
        scorer([parsed("a")])[0].message,
        scorer([parsed("b", probe=True)])[0].message,
        scorer([parsed("c", log_to_lakehouse=False)])[0].message,
    )

    def row_of(message: InferenceResult) -> object:
        return to_row(Parsed(message, "inference.results", 0, 0))

    assert row_of(kept)[0] == "inferences"
    assert row_of(probe) is None and row_of(opted_out) is None
