"""With the broker gone (and no supervisor to bring it back), the gateway answers 503 quickly
instead of hanging."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from app.supervisor import Process
from app.topology import Spec, child_environment, gateway_spec
from broker.clients import ensure_topics, wait_for_broker
from servers import tansu
from tests.integration.conftest import make_settings, wait_until

pytestmark = pytest.mark.integration


def _health(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_gateway_answers_503_quickly_when_the_broker_is_down(tmp_path: Path) -> None:
    s = make_settings(tmp_path, publish_timeout=1.0, broker_storage="memory")
    recipe = tansu.recipe(s.kafka.brokers, "memory", s.servers.logstore_port)
    env = child_environment(s)
    broker = Process(Spec(recipe.name, recipe.argv), env, tmp_path / "broker.log")
    gateway = Process(gateway_spec(), env, tmp_path / "gateway.log")
    url = s.gateway_url
    try:
        broker.start()
        wait_for_broker(s)
        ensure_topics(s)
        gateway.start()
        wait_until(lambda: _health(url), timeout=60)
        broker.stop()
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
        broker.stop()
