"""A server as the supervisor sees it: a command, its environment, and a readiness probe."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Recipe:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    """Variables added to the supervisor's environment."""
    ready: Callable[[], bool] = lambda: True
    """True once the server answers."""
    user: str | None = None
    """Run as this system user (PostgreSQL refuses to run as root)."""
    cwd: Path | None = None


def run_as(user: str | None) -> dict[str, Any]:
    """`subprocess` arguments that run a child as `user` with only that user's group: with
    root's groups left in place, root's group permissions would apply and deny access."""
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait(probe: Callable[[], bool], what: str, timeout: float = 60.0, every: float = 0.1) -> None:
    """Poll `probe` until it is true; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer within {timeout:.0f}s")
        time.sleep(every)
