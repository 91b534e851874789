"""The gateway without a broker or a registry, for tests through `httpx.ASGITransport`.

`FakeBridge` answers every published request at once, as the inference flow would (a model
`m/1` scoring 0.75, or the `error` set for a text), except the text `UNANSWERED`; `fake_app`
builds `create_app` on it with an in-memory registry of one model, `m` version 1 with the
alias `champion`; `call` sends an app one request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI

from driftline import settings
from driftline.ab import Experiment
from driftline.clock import utc_now
from driftline.topics import (
    REQUESTS,
    InferenceRequest,
    InferenceResult,
    Message,
    ModelRef,
    Topic,
)
from gateway import app as gateway_app
from gateway.bridge import ResultCache
from models import experiments

REGISTERED = {"m": ({"champion"}, "1")}
ERRORS: dict[str, str] = {}
"""Text -> the error the fake flow answers it with (e.g. a model that is not found)."""
UNANSWERED = "the flow never answers this"
"""A text the fake flow takes but never scores (the gateway's timeout runs out: 504)."""


class FakeBridge:
    """The `KafkaBridge` surface the routes use; every request is scored at once."""

    def __init__(self) -> None:
        self.cache = ResultCache(100)
        self.published: list[Message] = []
        self._pending: dict[UUID, asyncio.Future[InferenceResult]] = {}

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    def expect(self, inference_id: UUID) -> asyncio.Future[InferenceResult]:
        future: asyncio.Future[InferenceResult] = asyncio.get_running_loop().create_future()
        self._pending[inference_id] = future
        return future

    def forget(self, inference_id: UUID, _future: Any) -> None:
        self._pending.pop(inference_id, None)

    async def ask(self, request: InferenceRequest, timeout: float) -> InferenceResult:
        waiting = self.expect(request.inference_id)
        try:
            await self.publish(REQUESTS, request)
            async with asyncio.timeout(timeout):
                return await waiting
        finally:
            self.forget(request.inference_id, waiting)

    async def publish(self, _topic: Topic, message: Message) -> None:
        message.to_json()  # what the real bridge sends: it must serialize
        self.published.append(message)
        if not isinstance(message, InferenceRequest) or message.data == UNANSWERED:
            return
        error = ERRORS.get(message.data)
        result = InferenceResult(
            **message.model_dump(include={"inference_id", "created_at", "data", "subject"}),
            model=None if error else ModelRef(name="m", version="1"),
            experiment=message.experiment or "default",
            arm=None if error else "m",
            prediction=None if error else 0.75,
            label=None if error else 1,
            threshold=0.5,
            scored_at=utc_now(),
            error=error,
        )
        self.cache.put(result)
        future = self._pending.get(message.inference_id)
        if future is not None and not future.done():
            future.set_result(result)

    def broker_reachable(self, timeout: float = 1.0) -> bool:
        return True


def missing(_settings: Any, refs: Any) -> list[tuple[str, str]]:
    return [(n, v) for n, v in refs if (n, v) != ("m", "1")]


def missing_arms(_settings: Any, experiment: Experiment) -> list[str]:
    return [
        f"arm {a.name!r}: no model {a.model!r}"
        for a in experiment.arms
        if a.model != "m" or (a.version or "1") != "1" or (a.alias or "champion") != "champion"
    ]


def fake_app(home: Path, monkeypatch: pytest.MonkeyPatch, **overrides: Any) -> FastAPI:
    """`create_app` on a `FakeBridge`, a fake registry and an experiment store under `home`."""
    s = settings.load({}, home=home, **overrides)
    monkeypatch.setattr(gateway_app, "missing_versions", missing)
    monkeypatch.setattr(gateway_app, "missing_models", missing_arms)
    monkeypatch.setattr(
        gateway_app,
        "current",
        lambda s, store, **kw: experiments.current(s, store, lambda _: REGISTERED, **kw),
    )
    return gateway_app.create_app(s, bridge=FakeBridge())  # type: ignore[arg-type]


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to `app` in process; an exception the app lets escape is a 500 answer."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            return await http.request(method, path, **kwargs)

    return asyncio.run(go())


@contextmanager
def logged(level: int = logging.DEBUG) -> Iterator[list[dict[str, Any]]]:
    """Every log record meanwhile, parsed from the JSON line `driftline.logs` writes."""
    from driftline.logs import JsonFormatter

    found: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(json.loads(JsonFormatter().format(record)))

    handler, root = Collect(level=level), logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield found
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
