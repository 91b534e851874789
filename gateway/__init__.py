"""The FastAPI gateway: `create_app(settings)`; run it with `driftline gateway`."""

from fastapi import FastAPI

from driftline import logs, settings
from gateway.app import create_app

__all__ = ["create_app", "from_environment"]


def from_environment() -> FastAPI:
    """The app with the configured settings: the factory each uvicorn worker calls."""
    configured = settings.load()
    logs.configure(configured.log_level)
    return create_app(configured)
