"""Real parts, started for the test session the way a person starts them: `driftline up`, in a
temporary folder on free ports, after a model is trained on a sample. The supervisor runs the
broker and its storage, the flows as `python -m bytewax.run` processes and the gateway; tests
find its processes in `<home>/run/stack.json`, kill them, and watch the supervisor restart them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from playwright.sync_api import Page, sync_playwright

from app import supervisor
from broker.clients import consumer_config
from driftline import settings
from driftline.settings import Settings
from driftline.settings.groups import FlowSettings
from servers.recipe import free_port, free_ports

T = TypeVar("T")
pytestmark = pytest.mark.integration


PATIENCE = 3.0
"""Every deadline is this many times the one a test names, which is what the condition takes
on a usual day here. A deadline only bounds how long a failure takes to show (a condition met
returns at once), and some days this machine runs at 40% of its usual speed: on 2026-11-30 the
stack fell 70 s behind a 60 requests/s burst, and a 60 s wait failed a CI run."""


def wait_until(probe: Callable[[], T | None], timeout: float = 30.0, every: float = 0.2) -> T:
    """Call `probe` until it returns something truthy, for up to `PATIENCE` x `timeout`
    seconds; fail with its last answer otherwise."""
    deadline = time.monotonic() + PATIENCE * timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"condition not met within {PATIENCE * timeout:g}s (last: {last!r})")


def read_later(settings: Settings, topics: list[str], group: str = "driftline-tests") -> None:
    """Say that a test will read `topics` whole later, as a downstream consumer would: commit a
    group at each partition's start. The broker's log store deletes the batches that every
    group reading a partition has read, but its newest `DRIFTLINE_BROKER_KEEP_READ_BATCHES`;
    without a group of its own, a test that reads a topic after the flows have read it may
    find its first batches gone (`read_to_end` starts at the log start)."""
    consumer = Consumer(consumer_config(settings, group_id=group))
    try:
        for topic in topics:
            partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
            starts = []
            for p in partitions:
                low, _ = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                starts.append(TopicPartition(topic, p, low))
            consumer.commit(offsets=starts, asynchronous=False)
    finally:
        consumer.close()


def read_to_end(config: dict[str, Any], topic: str, timeout: float = 60.0) -> list[Message]:
    """Every message on `topic` up to its end when called, read from its start with a consumer
    of `config` (manual assignment). Reads up to the high watermarks, not up to a pause: a slow
    fetch on a busy machine must not cut the newest messages off.

    tansu's high watermark (ListOffsets, latest) is the first offset + 1 of a partition's last
    batch, not the end of the log: the rest of that batch came in the same fetch as its first
    message, so once that is read, what the consumer holds already is taken too."""
    consumer = Consumer(config)
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            for p in partitions
        }
        left = {p: high for p, (low, high) in ends.items() if high > low}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        messages: list[Message] = []
        deadline = time.monotonic() + PATIENCE * timeout
        while left:
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: not read up to {ends} in time (left: {left})")
            for msg in consumer.consume(500, 1.0):
                assert msg.error() is None, msg.error()
                messages.append(msg)
                if msg.offset() >= left.get(msg.partition(), 0) - 1:
                    left.pop(msg.partition(), None)
        while held := consumer.consume(500, 0):
            assert all(msg.error() is None for msg in held), [msg.error() for msg in held]
            messages.extend(held)
        return messages
    finally:
        consumer.close()


API_KEY = "driftline-test-key-7f3a9c2e"
"""The stack's API key (`DRIFTLINE_API_KEYS`): changing an experiment needs it."""
WITH_KEY = {"X-API-Key": API_KEY}


def make_settings(home: Path, **overrides: Any) -> Settings:
    # Blocks first: a flow cluster takes `flow_port_base + i`, a flow process's /metrics
    # `metrics_port_base + 10 x flow + process`; single ports handed out after stay clear of both
    # (a gateway port inside the metrics block once made `/ready` answer Bytewax's empty 404).
    flow_ports = free_ports(FlowSettings.METRICS_PORTS)  # as many as the cluster may take
    metrics_ports = free_ports(FlowSettings.METRICS_PORTS)
    values: dict[str, Any] = {
        "home": home,
        "brokers": f"127.0.0.1:{free_port()}",
        "gateway_port": free_port(),
        "logstore_port": free_port(),
        "objectstore_port": free_port(),
        "postgres_port": free_port(),
        "mlflow_port": free_port(),
        "flow_port_base": flow_ports,
        "metrics_port_base": metrics_ports,
        "lake_batch_seconds": 0.3,
        "lake_batch_size": 200,
        "lake_compact_seconds": 5.0,  # compaction runs beside readers and the kill -9 test
        "model_refresh_seconds": 1.0,
        # Short monitor windows, so drift shows within seconds (tests/integration/test_monitor.py).
        "monitor_window_seconds": 20.0,
        "monitor_slide_seconds": 2.0,
        "monitor_lateness_seconds": 3.0,
        "monitor_idle_seconds": 10.0,  # windows of a model that stops getting traffic close
        "api_keys": API_KEY,
        # Twice the default before a 504: right after a kill -9 or an earlier test's burst a busy
        # CI machine has taken over 10 s to answer, and a test that checks something else then
        # failed on the 504 (the 504 itself: tests/unit/test_contract_unit.py).
        "inference_timeout": 20.0,
        # No retraining in the shared stack: test_retrain.py runs a stack of its own with it.
        "retrain_metrics": "",
        # Tests read topics from the beginning to check what the flows did, so the log store
        # keeps every capped batch, read or not. Retention by the groups' offsets is tested in
        # test_logstore_tansu.py and measured by bench/soak.py.
        "broker_keep_read_batches": 1000,
    }
    return settings.load({}, **(values | overrides))


class Stack:
    """A running `driftline up`, and handles on the processes it supervises."""

    def __init__(self, s: Settings) -> None:
        self.settings = s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.settings.gateway_url

    def start(self, *args: str, timeout: float = 240) -> None:
        log = (self.settings.home / "up.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up", *args],
            env=os.environ | self.settings.to_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            supervisor.wait_ready(self.settings, timeout=timeout)
            supervisor.wait_lake(self.settings, timeout=timeout)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def state(self) -> dict[str, Any]:
        return dict(json.loads(supervisor.state_file(self.settings).read_text()))

    def pids(self, unit: str) -> dict[str, int]:
        """The live processes of `unit` (a flow, `gateway`, `broker`, ...) by name."""
        return dict(self.state()["units"][unit]["processes"])

    def kill(self, unit: str, process: str | None = None) -> int:
        """SIGKILL one process of `unit` (its first by default); returns its pid."""
        pids = self.pids(unit)
        pid = pids[process] if process else next(iter(pids.values()))
        os.kill(pid, signal.SIGKILL)
        return pid

    def wait_restarted(self, unit: str, killed: int, timeout: float = 90) -> None:
        """Until the supervisor has `unit` running again, without the killed process."""

        def restarted() -> bool:
            state = self.state()["units"][unit]
            pids = set(state["processes"].values())
            return bool(pids) and killed not in pids and all(_alive(p) for p in pids)

        wait_until(restarted, timeout=timeout, every=0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def trained_stack(s: Settings) -> Iterator[Stack]:
    """The TF-IDF pair trained on a sample (a few seconds), then the stack up and ready on `s`;
    stopped on exit."""
    from models import train

    train.train(s, sample=2000, only=train.QUICK)
    running = Stack(s)
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole embedded stack, up and ready, for the session."""
    # Fixed alert levels: tests share this stack across drift episodes, and a CUSUM remembers
    # an earlier test's drift for many windows (no new alert on the next one). The CUSUM rule
    # runs through a stack of its own in test_retrain.py.
    s = make_settings(tmp_path_factory.mktemp("driftline"), alert_rule="fixed")
    with trained_stack(s) as running:
        yield running


@pytest.fixture()
def client(live: Stack) -> Iterator[httpx.Client]:
    """A client of the stack's gateway that sends the API key."""
    with httpx.Client(base_url=live.url, timeout=30, headers=WITH_KEY) as http:
        yield http


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [  # ../shared/PLATFORM.md: what works here as root, with nothing downloaded
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture()
def page(live: Stack) -> Iterator[Page]:
    """A page in headless Chromium (Debian's, driven by Playwright)."""
    with sync_playwright() as playwright:
        # Playwright gives the browser a fresh profile folder of its own.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1000})
        finally:
            browser.close()
