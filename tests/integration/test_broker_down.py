"""With the broker gone, the gateway answers 503 quickly instead of hanging."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from broker import embedded
from tests.integration.conftest import Stack, make_settings, wait_until

pytestmark = pytest.mark.integration


def _health(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_gateway_answers_503_quickly_when_the_broker_is_down(tmp_path: Path) -> None:
    s = make_settings(tmp_path, publish_timeout=1.0)
    embedded.start(s)
    gateway = Stack(s).children["gateway"]
    gateway.env = gateway.env | {"DRIFTLINE_PUBLISH_TIMEOUT": "1.0"}
    gateway.start()
    url = f"http://127.0.0.1:{s.gateway.port}"
    try:
        wait_until(lambda: _health(url), timeout=30)
        embedded.stop(s)
        requests = [
            ("POST", {"data": "anyone there?"}),
            ("PATCH", {"inference_id": str(uuid.uuid4()), "feedback": 1.0}),
        ]
        for method, body in requests:
            started = time.monotonic()
            response = httpx.request(method, f"{url}/inference", json=body, timeout=30)
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert "broker" in response.json()["detail"]
            # Bound: publish timeout (1 s) + 1 s grace, with room for a loaded machine.
            assert elapsed < 8, f"{method} took {elapsed:.1f}s with the broker down"
        ready = httpx.get(f"{url}/ready", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["broker"] is False
    finally:
        gateway.stop()
        embedded.stop(s)
