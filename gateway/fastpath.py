"""`POST /inference` without the framework in between: the route clients call thousands of
times a second.

A profile of the gateway's event loop under a closed loop of single-text requests put half its
time in FastAPI's layers around the endpoint (routing, dependency solving, request and response
validation, four wrappers of `send`), and the loop was busy 85% of the time: that, not the
broker, capped the closed-loop throughput. `ScoringPath` is the innermost of the gateway's own
middleware (inside the request id, the body limit and the metrics). It reads the body and, when
it is JSON that makes a valid `InferenceIn`, with any API key the route needs, answers with the
very function the route calls (`respond`). Anything else (not JSON, a schema error, a missing
key, another content type, a client that went away) goes on to the FastAPI route with the body
already read, so every error stays exactly the route's answer; `tests/unit/test_gateway_fastpath`
sends the same requests both ways.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from gateway.auth import authorized
from gateway.metrics import ASGIApp, Message, Receive, Scope, Send
from gateway.schemas import InferenceIn

PATH = "/inference"


class ScoringPath:
    """Serves the valid `POST /inference` requests itself; passes everything else on."""

    def __init__(
        self,
        app: ASGIApp,
        respond: Callable[[InferenceIn], Awaitable[Response]],
        route: BaseRoute,
        keys: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.respond = respond
        self.route = route  # what the router would set: the metrics label requests by it
        self.keys = keys  # the keys the route requires; none: it is open

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        received = [await receive()]
        while received[-1]["type"] == "http.request" and received[-1].get("more_body", False):
            received.append(await receive())
        parsed = await self._valid(scope, received)
        if parsed is None:
            await self.app(scope, _replay(received, receive), send)
            return
        scope["route"] = self.route
        response = await self.respond(parsed)
        await response(scope, receive, send)

    async def _valid(self, scope: Scope, received: list[Message]) -> InferenceIn | None:
        """The body as the route would take it, or None if the route would refuse it."""
        if received[-1]["type"] != "http.request" or not _json_content(scope):
            return None  # another type of body, or a client that went away
        body = b"".join(message.get("body", b"") for message in received)
        if self.keys and not await authorized(self.keys, Request(scope)):
            return None
        try:
            return InferenceIn.model_validate(json.loads(body))  # as FastAPI reads a body
        except Exception:  # not JSON, not UTF-8, too deep, against the schema: the route's 4xx
            return None


def _json_content(scope: Scope) -> bool:
    """Whether the request says its body is JSON (FastAPI reads no other type as JSON)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json"
    return False


def _replay(received: list[Message], receive: Receive) -> Receive:
    """A `receive` that gives the messages already read again, then reads on."""
    pending = list(received)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
