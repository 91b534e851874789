"""Flows resume after a broker restart on the same log, and start afresh when the log is lost.

The epoch of the broker's log is a digest of its topics' ids (`broker.clients.epoch`): the same
after a restart on the same storage, new when the topics had to be created again.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.supervisor import Process
from app.topology import Spec, Topology, child_environment
from broker.clients import wait_for_broker
from driftline.settings import Settings
from servers import logstore, tansu
from servers.recipe import wait
from tests.integration.conftest import make_settings

pytestmark = pytest.mark.integration


class Servers:
    """The log store and the broker, started and killed by hand."""

    def __init__(self, s: Settings, folder: Path) -> None:
        self.s, self.folder = s, folder
        self.store_recipe = logstore.recipe(
            folder / "logstore", s.servers.logstore_port, 3600.0, 1000, 100
        )
        broker = tansu.recipe(s.kafka.brokers, "disk", s.servers.logstore_port)
        env = child_environment(s)
        self.store = Process(Spec("logstore", self.store_recipe.argv), env, folder / "s.log")
        self.broker = Process(Spec("broker", broker.argv, broker.env), env, folder / "b.log")

    def start(self) -> None:
        self.store.start()
        wait(self.store_recipe.ready, "log store", timeout=30)
        self.broker.start()
        wait_for_broker(self.s, timeout=30)

    def kill(self) -> None:
        for process in (self.broker, self.store):
            process.stop(timeout=0)


@pytest.fixture()
def servers(tmp_path: Path) -> Iterator[Servers]:
    running = Servers(make_settings(tmp_path / "home"), tmp_path)
    try:
        yield running
    finally:
        running.kill()


def test_the_epoch_survives_a_broker_restart_and_changes_when_the_log_is_wiped(
    servers: Servers,
) -> None:
    top = Topology(servers.s)
    servers.start()
    assert top.broker_ready() is False  # first look: topics created, nothing to compare with
    first = top.log_epoch
    servers.broker.stop(timeout=0)  # kill -9 of the broker alone: the log is on disk
    servers.broker.start()
    wait_for_broker(servers.s, timeout=30)
    assert top.broker_ready() is False and top.log_epoch == first
    servers.kill()
    shutil.rmtree(servers.folder / "logstore")  # the log is gone
    servers.start()
    assert top.broker_ready() is True and top.log_epoch != first
