"""The FastAPI gateway: `create_app(settings)`; run it with `driftline gateway`."""

from gateway.app import create_app

__all__ = ["create_app"]
