"""Real parts, started for the test session: a tansu broker, a sqlite MLflow store with a model
trained on a sample, DuckLake files, the flows as `python -m bytewax.run` processes, and the
gateway as a uvicorn server. Everything lives in a temporary folder on free ports.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from app import supervisor
from broker import embedded
from driftline import settings
from driftline.settings import Settings

T = TypeVar("T")
pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(probe: Callable[[], T | None], timeout: float = 30.0, every: float = 0.2) -> T:
    """Call `probe` until it returns something truthy; fail with its last answer otherwise."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


def make_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "brokers": f"127.0.0.1:{free_port()}",
        "gateway_port": free_port(),
        "lake_batch_seconds": 0.3,
        "lake_batch_size": 200,
        "lake_compact_seconds": 5.0,  # compaction runs beside readers and the kill -9 test
        "model_refresh_seconds": 1.0,
        # Short monitor windows, so drift shows within seconds (tests/integration/test_monitor.py).
        "monitor_window_seconds": 20.0,
        "monitor_slide_seconds": 2.0,
        "monitor_lateness_seconds": 3.0,
        "monitor_idle_seconds": 10.0,  # windows of a model that stops getting traffic close
    }
    return settings.load(**(values | overrides))


class Stack:
    """Handles on the running processes, for tests that kill and restart them."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        env = os.environ | s.to_env()
        self.children = {c.name: c for c in supervisor.children(s)}
        for child in self.children.values():
            child.env = child.env | env

    @property
    def url(self) -> str:
        return self.settings.gateway_url

    def start(self) -> None:
        for child in self.children.values():
            child.start()
        supervisor.wait_ready(self.settings, timeout=90)
        supervisor.wait_lake(self.settings)

    def stop(self) -> None:
        for child in self.children.values():
            child.stop()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole stack, up and ready, for the session."""
    from models import train

    s = make_settings(tmp_path_factory.mktemp("driftline"))
    embedded.start(s)
    train.train(s, sample=2000, only=train.QUICK)  # the TF-IDF pair: a few seconds
    running = Stack(s)
    try:
        running.start()
        yield running
    finally:
        running.stop()
        embedded.stop(s)


@pytest.fixture()
def client(live: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        yield http
