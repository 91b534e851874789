"""The gateway's HTTP contract, on a fake bridge: what each error answers, and that the OpenAPI
document says so (tests/integration/test_contract.py fuzzes the real stack)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftline.logs import REQUEST_ID
from gateway import app as gateway_app
from gateway.errors import request_id_of
from gateway.schemas import Problem
from models.experiments import ExperimentStore
from tests.unit import gateway_fakes
from tests.unit.gateway_fakes import call, fake_app, logged

SOME_ID = "5b0c1f7e-1111-4111-8111-111111111111"


@pytest.fixture()
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return fake_app(tmp_path, monkeypatch)


def problem(response: httpx.Response) -> Problem:
    """The body as the documented `Problem` (fails if it is not one)."""
    return Problem.model_validate_json(response.content, strict=False)


# ---- unknown names and strict types -------------------------------------------------------


def test_an_unknown_explicit_model_is_422_with_the_reason_and_never_published(app: Any) -> None:
    models = [{"name": "m", "version": "1"}, {"name": "nope", "version": "3"}]
    answer = call(app, "POST", "/inference", json={"data": "x", "models": models})
    assert answer.status_code == 422
    assert problem(answer).detail == "no model 'nope' version '3'"
    assert problem(answer).inference_id is not None
    known = call(app, "POST", "/inference", json={"data": "x", "models": models[:1]})
    assert known.status_code == 200


def test_registered_versions_are_checked_once(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Any] = []

    def missing(settings: Any, refs: Any) -> list[tuple[str, str]]:
        asked.append(list(refs))
        return gateway_fakes.missing(settings, refs)

    monkeypatch.setattr(gateway_app, "missing_versions", missing)
    body = {"data": "x", "models": [{"name": "m", "version": "1"}]}
    assert [call(app, "POST", "/inference", json=body).status_code for _ in range(3)] == [200] * 3
    assert asked == [[("m", "1")]]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("MlflowException: Registered Model with name=gone not found", 422),
        ("unknown experiment 'gone'", 404),
        ("RuntimeError: out of memory", 503),
    ],
)
def test_a_flow_error_maps_to_its_status(app: Any, error: str, status: int) -> None:
    gateway_fakes.ERRORS["fails"] = error
    try:
        answer = call(app, "POST", "/inference", json={"data": "fails"})
        batch = call(app, "POST", "/inferences", json={"items": [{"data": "fails"}]})
    finally:
        gateway_fakes.ERRORS.clear()
    assert answer.status_code == status and error in problem(answer).detail
    assert batch.json()["results"][0]["status"] == status
    again = call(app, "GET", f"/inference/{problem(answer).inference_id}")
    assert again.status_code == status


def test_no_result_in_time_is_504_with_the_id_to_fetch_it_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fake_app(tmp_path, monkeypatch, inference_timeout=0.2)
    body = {"data": gateway_fakes.UNANSWERED}
    answer = call(app, "POST", "/inference", json=body)
    assert answer.status_code == 504
    assert problem(answer).inference_id is not None
    assert "GET /inference/" in problem(answer).detail
    batch = call(app, "POST", "/inferences", json={"items": [body, {"data": "x"}]})
    assert [item["status"] for item in batch.json()["results"]] == [504, 200]
    later = call(app, "GET", f"/inference/{problem(answer).inference_id}")
    assert later.status_code == 404  # never scored: neither cached nor in the lake


@pytest.mark.parametrize(
    ("path", "method", "body", "where"),
    [
        ("/inference", "PATCH", {"inference_id": SOME_ID, "feedback": False}, "feedback"),
        ("/inference", "PATCH", {"inference_id": SOME_ID, "feedback": "0.5"}, "feedback"),
        ("/inference", "POST", {"data": "x", "log_to_lakehouse": 0}, "log_to_lakehouse"),
        ("/inference", "POST", {"data": "x", "log_to_lakehouse": "true"}, "log_to_lakehouse"),
        ("/inference", "POST", {"data": "x", "created_at": 0}, "created_at"),
        ("/inference", "POST", {"data": "x", "created_at": "1700000000"}, "created_at"),
        (
            "/inference",
            "POST",
            {"data": "x", "created_at": "0001-01-01T00:00:00+01:00"},
            "created_at",
        ),
        ("/inference", "POST", {"data": "x", "created_at": "1969-12-31T23:59:59Z"}, "created_at"),
        ("/inference", "POST", b'{"data": "lone \\ud800"}', None),  # JSON escapes it
    ],
)
def test_types_are_as_strict_as_the_schema(
    app: Any, path: str, method: str, body: dict[str, Any] | bytes, where: str | None
) -> None:
    if isinstance(body, bytes):
        answer = call(app, method, path, content=body, headers={"content-type": "application/json"})
    else:
        answer = call(app, method, path, json=body)
    assert answer.status_code == 422, answer.text
    issues = problem(answer).errors
    assert issues
    if where is not None:
        assert issues[0].loc == ["body", where]


def test_numbers_may_be_integers(app: Any) -> None:
    feedback = {"inference_id": SOME_ID, "feedback": 1}
    assert call(app, "PATCH", "/inference", json=feedback).status_code == 202
    arms = [{"name": "A", "model": "m", "alias": "champion", "weight": 2}]
    assert call(app, "PUT", "/experiments/e", json={"arms": arms}).json()["arms"][0]["weight"] == 2


@pytest.mark.parametrize(
    "arm",
    [
        {"name": "A", "model": "m", "alias": "champion", "version": "1", "weight": 1},
        {"name": "A", "model": "m", "weight": 1},
        {"name": "A", "model": "m", "alias": "champion", "weight": True},
        {"name": "A", "model": "m", "alias": "champion", "weight": 0},
    ],
)
def test_an_arm_names_its_model_by_alias_or_version_and_weighs_a_positive_number(
    app: Any, arm: dict[str, Any]
) -> None:
    answer = call(app, "PUT", "/experiments/e", json={"arms": [arm]})
    assert answer.status_code == 422 and problem(answer).errors


def test_repeated_arm_names_and_unregistered_models_are_422_with_the_reason(app: Any) -> None:
    arm = {"name": "A", "model": "m", "alias": "champion", "weight": 1}
    twice = call(app, "PUT", "/experiments/e", json={"arms": [arm, arm]})
    assert twice.status_code == 422 and "repeats arm names" in problem(twice).detail
    unknown = call(app, "PUT", "/experiments/e", json={"arms": [arm | {"model": "gone"}]})
    assert unknown.status_code == 422 and "'gone'" in problem(unknown).detail


def test_shadow_arms_are_declared_per_arm_and_an_experiment_needs_one_that_answers(
    app: Any,
) -> None:
    answering = {"name": "A", "model": "m", "alias": "champion"}
    shadow = {"name": "S", "model": "m", "version": "1", "shadow": True, "shadow_sample": 0.5}
    stored = call(app, "PUT", "/experiments/e", json={"arms": [answering, shadow]})
    assert stored.status_code == 200, stored.text
    assert [(a["weight"], a["shadow"], a["shadow_sample"]) for a in stored.json()["arms"]] == [
        (1.0, False, 1.0),
        (1.0, True, 0.5),
    ]
    only = call(app, "PUT", "/experiments/e", json={"arms": [shadow]})
    assert only.status_code == 422 and "needs an arm that is not a shadow" in problem(only).detail
    sampled = call(
        app, "PUT", "/experiments/e", json={"arms": [answering | {"shadow_sample": 0.5}]}
    )
    assert sampled.status_code == 422 and "not a shadow arm" in problem(sampled).detail
    for wrong in ({"shadow": 1}, {"shadow_sample": 1.5}, {"shadow_sample": True}):
        refused = call(app, "PUT", "/experiments/e", json={"arms": [answering, shadow | wrong]})
        assert refused.status_code == 422 and problem(refused).errors, wrong


# ---- reads never write ---------------------------------------------------------------------


def test_reading_the_default_experiment_stores_nothing_and_it_cannot_be_deleted(
    app: Any, tmp_path: Path
) -> None:
    store = ExperimentStore(tmp_path / "experiments.sqlite")
    listed = call(app, "GET", "/experiments").json()
    assert [e["name"] for e in listed] == ["default"]  # built from the registry, complete
    assert call(app, "GET", "/experiments/default").status_code == 200
    assert store.list() == []  # ... and not stored by reading it
    refused = call(app, "DELETE", "/experiments/default")
    assert refused.status_code == 409 and "PUT" in problem(refused).detail
    assert call(app, "GET", "/experiments/default").status_code == 200
    arms = [{"name": "A", "model": "m", "alias": "champion", "weight": 1}]
    assert call(app, "PUT", "/experiments/default", json={"arms": arms}).status_code == 200
    assert call(app, "GET", "/experiments/default").json()["arms"][0]["model"] == "m"
    assert call(app, "DELETE", "/experiments/default").status_code == 409


def test_after_a_delete_a_read_finds_nothing(app: Any) -> None:
    arms = [{"name": "A", "model": "m", "alias": "champion", "weight": 1}]
    assert call(app, "PUT", "/experiments/e", json={"arms": arms}).status_code == 200
    assert call(app, "DELETE", "/experiments/e").status_code == 204
    assert call(app, "GET", "/experiments/e").status_code == 404
    assert call(app, "DELETE", "/experiments/e").status_code == 404
    assert "e" not in [e["name"] for e in call(app, "GET", "/experiments").json()]


# ---- errors: bodies, methods, size, crashes -------------------------------------------------


def test_unparseable_bodies_are_problems(app: Any) -> None:
    headers = {"content-type": "application/json"}
    broken = call(app, "POST", "/inference", content=b"{oops", headers=headers)
    assert broken.status_code == 422
    assert problem(broken).errors[0].type == "json_invalid"  # type: ignore[index]


def test_options_and_unsupported_methods_answer_allow(app: Any) -> None:
    options = call(app, "OPTIONS", "/inference")
    assert options.status_code == 204 and options.headers["allow"] == "PATCH, POST"
    wrong = call(app, "DELETE", "/inference")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "PATCH, POST"
    assert problem(wrong).detail == "Method Not Allowed"
    named = call(app, "OPTIONS", "/experiments/e")
    assert named.headers["allow"] == "DELETE, GET, PUT"
    assert call(app, "OPTIONS", "/nowhere").status_code == 404


def test_a_body_over_the_limit_is_413_whether_or_not_it_declares_its_length(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fake_app(tmp_path, monkeypatch, gateway_max_body_bytes=2048)
    big = json.dumps({"data": "x" * 4096}).encode()
    declared = call(app, "POST", "/inference", content=big, headers={"content-type": "json"})
    assert declared.status_code == 413
    assert problem(declared).detail == "the request body exceeds the limit of 2048 bytes"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: read until too much
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    headers = {"content-type": "application/json"}
    streamed = call(app, "POST", "/inference", content=chunks(), headers=headers)
    assert streamed.status_code == 413 and problem(streamed).request_id
    small = call(app, "POST", "/inference", json={"data": "x" * 1000})
    assert small.status_code == 200


@pytest.fixture()
def lines() -> Iterator[list[dict[str, Any]]]:
    """Every log record meanwhile, as the JSON line `driftline.logs` writes."""
    with logged(logging.INFO) as found:
        yield found


def test_a_crash_is_a_generic_500_with_the_request_id_and_the_trace_is_logged(
    app: Any, lines: list[dict[str, Any]]
) -> None:
    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals at /srv/model.py line 12")

    answer = call(app, "GET", "/crash", headers={"X-Request-ID": "req-7"})
    assert answer.status_code == 500
    body = problem(answer)
    assert body.request_id == "req-7" and answer.headers["x-request-id"] == "req-7"
    assert "secret" not in answer.text and "Traceback" not in answer.text
    logged = [line for line in lines if line["msg"] == "unhandled error"]
    assert logged and logged[0]["request_id"] == "req-7"
    assert "secret internals" in logged[0]["exc"]


def test_every_log_line_of_a_request_carries_its_id(app: Any, lines: list[dict[str, Any]]) -> None:
    arms = [{"name": "A", "model": "m", "alias": "champion", "weight": 1}]
    headers = {"X-Request-ID": "put-e-1"}
    assert call(app, "PUT", "/experiments/e", json={"arms": arms}, headers=headers).is_success
    stored = [line for line in lines if line["msg"] == "experiment stored"]
    assert stored and stored[0]["request_id"] == "put-e-1"  # logged in a worker thread
    assert REQUEST_ID.get() is None  # and reset after the request


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123", True), ("a" * 128, True), ("a" * 129, False), ("x y", False), ("", False)],
)
def test_a_request_id_is_kept_when_sensible_else_made(given: str, kept: bool) -> None:
    made = request_id_of({"headers": [(b"x-request-id", given.encode())]})
    assert (made == given) is kept
    if not kept:
        assert len(made) == 32 and uuid.UUID(made)


def test_every_answer_has_a_request_id_header(app: Any) -> None:
    assert len(call(app, "GET", "/health").headers["x-request-id"]) == 32
    assert call(app, "GET", "/nowhere").headers["x-request-id"]


# ---- the OpenAPI document ------------------------------------------------------------------


def test_every_error_status_is_documented_as_a_problem(app: Any) -> None:
    doc = call(app, "GET", "/openapi.json").json()
    problem_ref = "#/components/schemas/Problem"
    bodies = {("post", "/inference"), ("post", "/inferences"), ("patch", "/inference")}
    bodies.add(("put", "/experiments/{name}"))
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            if (method, path) in bodies:
                assert {"400", "413", "422"} <= codes, (method, path)
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")) and "content" in response:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": problem_ref}, (method, path, code)
    assert {"404", "503", "504"} <= set(doc["paths"]["/inference"]["post"]["responses"])
    assert "409" in doc["paths"]["/experiments/{name}"]["delete"]["responses"]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
