"""The monitoring dashboard the gateway serves at `/ui`.

    GET /ui                  the page (HTML, its script and styles are in `gateway/static/`)
    GET /ui/history?hours=6  drift reports, A/B reports and alerts from the lake, oldest first
    GET /ui/events           the same kinds of rows live, as server-sent events

The page draws its charts itself, as SVG, with no library and nothing from the internet. It
loads history from the lake once, then adds every new report from the monitoring topics as it
is published (`gateway.live`), without a reload.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from driftline.clock import utc_now
from driftline.settings import Settings
from gateway.live import FEEDS, MonitoringTail, json_ready

STATIC = Path(__file__).parent / "static"
HISTORY_ROWS = 20_000
"""Most rows of each kind one history answer carries (the newest)."""
KEEP_ALIVE_SECONDS = 15.0


def router(settings: Settings, tail: MonitoringTail) -> APIRouter:
    ui = APIRouter(prefix="/ui", include_in_schema=False)

    @ui.get("")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html")

    @ui.get("/static/{name}")
    async def static(name: str) -> Any:
        path = STATIC / name
        if path.parent != STATIC or not path.is_file():
            return JSONResponse({"detail": f"no file {name!r}"}, status_code=404)
        return FileResponse(path)

    @ui.get("/history")
    async def history(hours: float = Query(6.0, gt=0, le=24 * 90)) -> Any:
        rows = await asyncio.to_thread(_history, settings, hours)
        return {"config": _config(settings), **rows}

    @ui.get("/events")
    async def events(request: Request) -> StreamingResponse:
        queue = tail.subscribe()

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n\n"
                while not await request.is_disconnected():
                    try:
                        kind, row = await asyncio.wait_for(queue.get(), KEEP_ALIVE_SECONDS)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    yield b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(row) + b"\n\n"
            finally:
                tail.unsubscribe(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return ui


def _config(settings: Settings) -> dict[str, Any]:
    """What the page states beside its charts: the window, and the alert levels."""
    alerts = settings.alerts
    return {
        "window_seconds": settings.monitor.window_seconds,
        "slide_seconds": settings.monitor.slide_seconds,
        "alert_levels": {
            "ks_d": alerts.ks_d,
            "domain_auc": alerts.domain_auc,
            "f1_drop": alerts.f1_drop,
            "brier": alerts.brier,
        },
    }


def _history(settings: Settings, hours: float) -> dict[str, list[dict[str, Any]]]:
    """The newest rows of each monitoring table within `hours`; none before the lake exists.
    DuckDB is imported here, on the first look, not by every gateway worker at start."""
    import lakehouse

    since = utc_now() - timedelta(hours=hours)
    try:
        con = lakehouse.connect(settings.lake, read_only=True)
    except Exception:  # no lake yet: nothing to show
        return {name: [] for name in FEEDS}
    try:
        found: dict[str, list[dict[str, Any]]] = {}
        for name, (_, table) in FEEDS.items():
            time_column = table.stamp
            cursor = con.execute(
                f"SELECT * FROM (SELECT * FROM lake.{table.name} WHERE {time_column} >= ? "
                f"ORDER BY {time_column} DESC LIMIT {HISTORY_ROWS}) ORDER BY {time_column}",
                [since],
            )
            columns = [d[0] for d in cursor.description]
            found[name] = [
                json_ready(dict(zip(columns, row, strict=True)), table) for row in cursor.fetchall()
            ]
        return found
    finally:
        con.close()
