"""A server as the supervisor sees it: a command, its environment, and a readiness probe."""

from __future__ import annotations

import http.client
import random
import socket
import time
import urllib.error
import urllib.request
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
    metrics: str | None = None
    """URL of its Prometheus metrics, if it serves any."""


def run_as(user: str | None) -> dict[str, Any]:
    """`subprocess` arguments that run a child as `user` with only that user's group: with
    root's groups left in place, root's group permissions would apply and deny access."""
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": []}


LISTEN_PORTS = range(20_000, 32_000)
"""Where `free_port` looks: below Linux's ephemeral range (32768-60999), so the port cannot be
taken by an outgoing connection between the moment it is picked and the server binding it."""
_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 free now, not handed out before by this process (tests, benchmarks).

    >>> free_port() != free_port()
    True
    """
    return free_ports(1)


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports free now, none handed out before by this process:
    a block for servers that take `base + i` (flow clusters, the flows' metrics endpoints), so
    no single port handed out later falls inside it.

    >>> base = free_ports(60)
    >>> all(not base <= free_port() < base + 60 for _ in range(200))
    True
    """
    while True:
        first = random.choice(LISTEN_PORTS[: len(LISTEN_PORTS) - count + 1])
        block = range(first, first + count)
        if _handed_out.intersection(block) or not all(_bindable(port) for port in block):
            continue
        _handed_out.update(block)
        return first


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Probes go to the servers of this machine: never through an `http_proxy` of the environment."""


def http_get(url: str, timeout: float) -> tuple[int, bytes]:
    """The status and body of `GET url`, whatever the status; `OSError` when nothing answers.
    urllib, not httpx: `import httpx` loads its command line's rich, click and pygments too, 8
    MiB of the supervisor, a long-lived process."""
    try:
        with _DIRECT.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except http.client.HTTPException as error:  # something that does not speak HTTP
        raise OSError(f"{url}: {error!r}") from error


def wait(probe: Callable[[], bool], what: str, timeout: float = 60.0, every: float = 0.1) -> None:
    """Poll `probe` until it is true; TimeoutError naming `what` otherwise."""
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer within {timeout:.0f}s")
        time.sleep(every)
