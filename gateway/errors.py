"""Every error the gateway answers is a `Problem` body, with the request's id.

`RequestContext` is the outermost middleware. Per request it:

- takes the caller's `X-Request-ID` (1-128 characters of `A-Za-z0-9._:-`) or makes one, returns
  it as the `X-Request-ID` response header, and sets `driftline.logs.REQUEST_ID`, so every log
  line of the request carries it;
- answers `413` to a body larger than `DRIFTLINE_GATEWAY_MAX_BODY_BYTES`, by its
  `Content-Length` before reading it, or once the bytes read pass the limit;
- answers `500` with a generic `Problem` (and the request id to quote) to any exception the
  routes let escape, and logs the trace: no stack trace ever reaches a client.

`install(app)` adds the exception handlers that shape FastAPI's own errors as `Problem`s: a body
that is not valid JSON or breaks the schema (`422`, with each error in `errors`), an unreadable
body (`400`), an unknown path (`404`), a method the path does not take (`405` with `Allow`
listing every method of the path), and `OPTIONS` on a known path (`204` with `Allow`).
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from driftline.logs import REQUEST_ID
from gateway.metrics import ASGIApp, Message, Receive, Scope, Send
from gateway.schemas import Problem, ValidationIssue

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
_GOOD_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
INTERNAL = "internal error; the gateway logged it under this request id"


def problem_body(detail: str, **fields: Any) -> dict[str, Any]:
    """A `Problem` as JSON, with the current request's id."""
    body = Problem(detail=utf8(detail), request_id=REQUEST_ID.get(), **fields)
    return body.model_dump(mode="json", exclude_none=True)


def utf8(text: str) -> str:
    """`text`, with what UTF-8 cannot carry (a lone surrogate a client sent) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` when it is a sensible one, else a new random id."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER.encode():
            given = value.decode("latin-1")
            if _GOOD_ID.fullmatch(given):
                return given
            break
    return uuid.uuid4().hex


class BodyTooLarge(HTTPException):
    """Raised while the body is read (FastAPI passes an `HTTPException` on as it is)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds the limit of {limit} bytes")


class RequestContext:
    """Request id, body size limit and the last-resort 500, for every HTTP request."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = REQUEST_ID.set(request_id)
        started = False
        received = 0

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        async def receiving() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.limit:
                await self._answer(sending, 413, BodyTooLarge(self.limit).detail)
                return
            await self.app(scope, receiving, sending)
        except BodyTooLarge as exc:  # read by a route that does not turn it into its answer
            if not started:
                await self._answer(sending, 413, exc.detail)
        except Exception:
            log.exception(
                "unhandled error", extra={"method": scope.get("method"), "path": scope.get("path")}
            )
            if not started:
                await self._answer(sending, 500, INTERNAL)
        finally:
            REQUEST_ID.reset(token)

    @staticmethod
    async def _answer(send: Send, status: int, detail: str) -> None:
        response = JSONResponse(problem_body(detail), status_code=status)
        await send(
            {"type": "http.response.start", "status": status, "headers": response.raw_headers}
        )
        await send({"type": "http.response.body", "body": response.body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of the request's path takes (several routes may share a path)."""
    methods: set[str] = set()
    probe = {**scope, "method": "GET"}
    for route in app.router.routes:
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(probe)[0] is not Match.NONE:
            methods |= set(route_methods)
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Shape FastAPI's own error answers as `Problem`s."""

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allow = ", ".join(allowed_methods(app, request.scope))
            headers["Allow"] = allow
            if request.method == "OPTIONS":
                return Response(status_code=204, headers=headers)
        return JSONResponse(
            problem_body(str(exc.detail)), status_code=exc.status_code, headers=headers
        )

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        issues = [
            ValidationIssue(
                loc=[part if isinstance(part, int) else utf8(str(part)) for part in e["loc"]],
                msg=utf8(str(e.get("msg", ""))),
                type=str(e.get("type", "")),
            )
            for e in exc.errors()
        ]
        detail = (
            "; ".join(f"{'.'.join(map(str, issue.loc))}: {issue.msg}" for issue in issues)
            or "invalid request"
        )
        body = problem_body(detail, errors=issues)
        return JSONResponse(body, status_code=422)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
