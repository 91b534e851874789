"""`gateway.fastpath` answers `POST /inference` exactly as the FastAPI route does.

Each request goes to two gateways on the fake bridge: one as built, one without its
`ScoringPath`. The answers must match in status, headers and body (the random ids and times
masked), and the fast path must have served the valid requests itself and passed every other
one on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.fastpath import ScoringPath
from tests.unit import gateway_fakes
from tests.unit.gateway_fakes import call, fake_app

KEY = "k" * 24
RANDOM = {"inference_id", "request_id", "created_at"}
"""Fields that differ between any two answers."""
FUTURE = "2999-01-01T00:00:00Z"
JSON = {"content-type": "application/json"}


def served(content: bytes, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"content": content, "headers": JSON if headers is None else headers}


def chunks(body: bytes) -> AsyncIterator[bytes]:
    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    return pieces()


SERVED_FAST = {
    "minimal": served(b'{"data": "a text"}'),
    "every field": served(
        json.dumps(
            {
                "data": "a text",
                "subject": "user-1",
                "log_to_lakehouse": False,
                "experiment": "default",
                "models": [{"name": "m", "version": "1"}],
                "created_at": "2026-01-01T00:00:00Z",
            }
        ).encode()
    ),
    "charset given": served(b'{"data": "x"}', {"content-type": "Application/JSON; charset=utf-8"}),
    "unknown experiment (404)": served(b'{"data": "x", "experiment": "nope"}'),
    "unregistered model (422)": served(b'{"data": "x", "models": [{"name": "z", "version": "9"}]}'),
    "flow error (503)": served(b'{"data": "fails"}'),
    "no result in time (504)": served(json.dumps({"data": gateway_fakes.UNANSWERED}).encode()),
}
PASSED_ON = {
    "not JSON": served(b'{"data": '),
    "not UTF-8": served(b'{"data": "\xff"}'),
    "nested too deep": served(b"[" * 5000 + b"]" * 5000),
    "a list": served(b'[{"data": "x"}]'),
    "empty body": served(b""),
    "unknown field": served(b'{"data": "x", "colour": "red"}'),
    "empty text": served(b'{"data": ""}'),
    "lone surrogate": served(b'{"data": "\\ud800"}'),
    "in the future": served(json.dumps({"data": "x", "created_at": FUTURE}).encode()),
    "string for a boolean": served(b'{"data": "x", "log_to_lakehouse": "yes"}'),
    "plain text": served(b'{"data": "x"}', {"content-type": "text/plain"}),
    "no content type": served(b'{"data": "x"}', {}),
    "a +json type": served(b'{"data": "x"}', {"content-type": "application/problem+json"}),
    "too large": served(json.dumps({"data": "x" * 20_000}).encode()),
}


def masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "*" if k in RANDOM else masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def answer(app: Any, request: dict[str, Any], chunked: bool = False) -> tuple[Any, ...]:
    content = chunks(request["content"]) if chunked else request["content"]
    response = call(app, "POST", "/inference", content=content, headers=request["headers"])
    headers = {k: v for k, v in response.headers.items() if k not in ("x-request-id",)}
    try:
        body: Any = masked(response.json())
    except ValueError:
        body = response.content
    return response.status_code, headers, body


@pytest.fixture()
def taken(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether the fast path took each request it saw."""
    seen: list[bool] = []
    check = ScoringPath._valid

    async def recorded(self: ScoringPath, *args: Any) -> Any:
        parsed = await check(self, *args)
        seen.append(parsed is not None)
        return parsed

    monkeypatch.setattr(ScoringPath, "_valid", recorded)
    gateway_fakes.ERRORS["fails"] = "RuntimeError: out of memory"
    yield seen
    gateway_fakes.ERRORS.clear()


def gateways(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> tuple[Any, Any]:
    """The gateway as built, and the same without its fast path."""
    fast = fake_app(tmp_path / "fast", monkeypatch, **overrides)
    routed = fake_app(tmp_path / "routed", monkeypatch, **overrides)
    routed.user_middleware = [m for m in routed.user_middleware if m.cls is not ScoringPath]
    return fast, routed


@pytest.mark.parametrize("chunked", [False, True], ids=["one piece", "in pieces"])
def test_every_request_gets_the_routes_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: list[bool], chunked: bool
) -> None:
    limits = {"inference_timeout": 0.2, "gateway_max_body_bytes": 16_384}
    fast, routed = gateways(tmp_path, monkeypatch, **limits)
    for cases, expected in ((SERVED_FAST, True), (PASSED_ON, False)):
        for name, request in cases.items():
            taken.clear()
            got = answer(fast, request, chunked)
            assert taken == ([] if name == "too large" else [expected]), name
            assert got == answer(routed, request, chunked), name
            assert got[0] != 500, name


def test_with_keys_for_scoring_only_a_valid_key_takes_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, taken: list[bool]
) -> None:
    fast, routed = gateways(tmp_path, monkeypatch, api_keys=KEY, api_keys_for_scoring=True)
    body = b'{"data": "x"}'
    for headers, status, fastest in [
        ({}, 401, False),
        ({"authorization": "Bearer " + "w" * 24}, 403, False),
        ({"x-api-key": KEY, "authorization": "Bearer " + "w" * 24}, 403, False),
        ({"authorization": "Basic " + KEY}, 401, False),
        ({"authorization": f"bearer {KEY}"}, 200, True),
        ({"x-api-key": KEY}, 200, True),
    ]:
        request = served(body, JSON | headers)
        taken.clear()
        got = answer(fast, request)
        assert (got[0], taken) == (status, [fastest]), headers
        assert got == answer(routed, request), headers


def test_the_fast_path_is_counted_under_its_route(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.metrics import REQUESTS

    def count() -> float:
        return REQUESTS.labels("/inference", "POST", "200")._value.get()

    fast, _ = gateways(tmp_path, monkeypatch)
    before = count()
    assert answer(fast, served(b'{"data": "x"}'))[0] == 200
    assert count() == before + 1
