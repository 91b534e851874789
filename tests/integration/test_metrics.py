"""Prometheus metrics and `driftline status` against the running stack: the gateway counts
requests, a flow counts the dead letter a bad message makes and reports its lag per partition,
the monitor publishes its latest drift statistics, and `status` shows every unit alive."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest
from confluent_kafka import Producer

from app import status
from broker.clients import producer_config
from driftline.topics import REQUESTS
from tests.integration.conftest import Stack, wait_until

pytestmark = pytest.mark.integration


def metrics_url(live: Stack, unit: str, process: str | None = None) -> str:
    urls = live.state()["units"][unit]["metrics"]
    return str(urls[process or unit])


def scrape(url: str) -> status.Samples | None:
    """The parsed exposition, or None while the endpoint does not answer yet."""
    try:
        response = httpx.get(url, timeout=10)
    except httpx.HTTPError:
        return None
    return status.parse(response.text) if response.status_code == 200 else None


def value(samples: status.Samples, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(
        v for found, v in samples.get(name, []) if all(found.get(k) == x for k, x in labels.items())
    )


def test_gateway_metrics_count_requests(live: Stack, client: httpx.Client) -> None:
    url = metrics_url(live, "gateway")
    assert url == f"{live.url}/metrics"
    before = wait_until(lambda: scrape(url), timeout=30)
    route = {"route": "/inference", "method": "POST", "status": "200"}
    posted = value(before, "driftline_gateway_requests_total", **route)
    timed = value(before, "driftline_gateway_request_duration_seconds_count", route="/inference")
    for i in range(3):
        assert client.post("/inference", json={"data": f"count me {i}"}).status_code == 200

    def counted() -> status.Samples | None:
        after = scrape(url)
        done = after and value(after, "driftline_gateway_requests_total", **route) >= posted + 3
        return after if done else None

    after = wait_until(counted, timeout=30)
    count = "driftline_gateway_request_duration_seconds_count"
    assert value(after, count, route="/inference") >= timed + 3
    assert "driftline_gateway_requests_in_flight" in after
    assert "driftline_gateway_pending_replies" in after
    unmatched = {"route": "unmatched"}  # earlier tests may have asked for unknown paths
    total = "driftline_gateway_requests_total"
    assert value(after, total, **unmatched) == value(before, total, **unmatched)


def test_a_bad_message_counts_as_a_dead_letter_and_lag_is_per_partition(live: Stack) -> None:
    s = live.settings
    url = metrics_url(live, "inference")
    dead = "driftline_flow_dead_letters_total"
    before = wait_until(lambda: scrape(url), timeout=60)
    letters = value(before, dead, flow="inference", reason="not_json")

    producer = Producer(producer_config(s))
    producer.produce(REQUESTS.name(s.kafka), value=b"{broken json " + uuid.uuid4().hex.encode())
    producer.flush(10)

    def counted() -> status.Samples | None:
        after = scrape(url)
        done = after and value(after, dead, flow="inference", reason="not_json") > letters
        return after if done else None

    wait_until(counted, timeout=60)
    after = wait_until(lambda: scrape(url), timeout=10)
    topic = REQUESTS.name(s.kafka)
    assert value(after, "driftline_flow_messages_in_total", flow="inference", topic=topic) >= 1
    lag = [labels for labels, _ in after.get("driftline_flow_consumer_lag_messages", [])]
    partitions = sorted(int(labels["partition"]) for labels in lag if labels["topic"] == topic)
    assert partitions == list(range(s.kafka.partitions))
    assert any(name.startswith("bytewax_") for name in after)  # Bytewax's own step metrics


def test_lag_rises_under_a_burst_of_requests_and_falls_back(live: Stack) -> None:
    """20,000 unreadable requests at once: the inference flow takes them 500 at a time and
    dead-letters each, which takes seconds, so its lag is seen high, then back at 0."""
    s = live.settings
    url, topic = metrics_url(live, "inference"), REQUESTS.name(s.kafka)
    lag_metric = "driftline_flow_consumer_lag_messages"
    taken = value(wait_until(lambda: scrape(url), timeout=60), "driftline_flow_messages_in_total")
    burst = 20_000
    producer = Producer(producer_config(s) | {"linger.ms": 50})
    for i in range(burst):
        producer.produce(topic, value=b"not json %d" % i)
        producer.poll(0)
    producer.flush(60)

    seen: list[float] = []

    def caught_up() -> bool | None:
        samples = scrape(url)
        if samples is None:
            return None
        seen.append(value(samples, lag_metric, flow="inference", topic=topic))
        done = value(samples, "driftline_flow_messages_in_total") >= taken + burst
        return True if done and seen[-1] == 0 else None

    wait_until(caught_up, timeout=300, every=0.1)
    print(f"lag seen: max {max(seen):,.0f} over {len(seen)} scrapes")
    assert max(seen) >= 1_000, seen  # the backlog showed (it starts at up to 20,000)


def test_the_monitor_exports_each_models_latest_window(live: Stack, client: httpx.Client) -> None:
    url = metrics_url(live, "monitor")

    def reported() -> status.Samples | None:
        assert client.post("/inference", json={"data": "watch this"}).status_code == 200
        found = scrape(url)
        return found if found and found.get("driftline_model_window_events") else None

    samples = wait_until(reported, timeout=120, every=1.0)
    (labels, n), *_ = samples["driftline_model_window_events"]
    assert labels["model"] and labels["version"] and n >= 1
    assert "driftline_model_window_end_timestamp_seconds" in samples
    assert value(samples, "driftline_monitor_emission_seconds_count") >= 1


def test_status_shows_every_unit_alive(live: Stack, client: httpx.Client) -> None:
    assert client.post("/inference", json={"data": "status?"}).status_code == 200
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "status"],
        env=os.environ | live.settings.to_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    print(out.stdout)  # shown with `pytest -rP`: the README's example comes from here
    rows = {line.split()[1]: line.split() for line in out.stdout.splitlines()[3:] if line.strip()}
    for unit, info in live.state()["units"].items():
        for name, pid in info["processes"].items():
            assert rows[name][:4] == [unit, name, str(pid), "up"], out.stdout
    assert metrics_url(live, "inference") in rows["inference"]
    assert "DOWN" not in out.stdout
    assert "models:" in out.stdout

    stopped = live.settings.to_env() | {"DRIFTLINE_HOME": str(live.settings.home / "nothing")}
    none = subprocess.run(
        [sys.executable, "-m", "app.cli", "status"],
        env=os.environ | stopped,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert none.returncode == 1 and "no stack is running" in none.stderr
