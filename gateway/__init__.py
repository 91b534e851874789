"""The FastAPI gateway: `create_app(settings)`; run it with `driftline gateway`."""

from fastapi import FastAPI

from driftline import heap, logs, settings
from gateway.app import create_app

__all__ = ["create_app", "from_environment"]


def from_environment() -> FastAPI:
    """The app with the configured settings: the factory each uvicorn worker calls. The
    worker's start-up heap is then out of the collector's way (`driftline.heap`), as a flow's
    is; `create_app` itself leaves the process's collector alone (tests build many apps)."""
    configured = settings.load()
    logs.configure(configured.log_level)
    app = create_app(configured)
    heap.settle()
    return app
