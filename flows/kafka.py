"""Kafka input and output for the flows: one consumer per worker, and no message lost silently.

Bytewax's own connector opens one consumer per partition, each polled in a busy loop, and its
sink produces without looking at delivery reports, so a message that fails delivery while the
broker is down is dropped and the flow goes on. Here:

- `KafkaInput` reads every partition a worker owns through one shared consumer (one fetch per
  broker round trip instead of one per partition), keeps each partition's offset as its
  recovery state, and tells Bytewax when to come back (`next_awake`) instead of spinning when
  there is nothing to read. A source given `idle_wait` and `busy_wait` (the inference flow,
  run as one worker) instead waits in the consumer, so its worker sleeps until a request comes.
- Offsets must follow on: a message past the next expected offset is held back and the
  partition re-read from the expected one, for up to `GAP_GRACE` seconds
  (`flows.fetching.Contiguous`). tansu reserves a batch's offsets before it writes the batch,
  so under concurrent producers a fetch can return a later batch before an earlier one is
  visible; taking it would skip the earlier one for good (measured: 4 of 1,000 requests never
  scored after a broker restart). A partition read from the beginning starts at its log start,
  asked of the broker, not at whichever batch shows first. Idle partitions stop fetching and
  look at their end offsets now and then (`flows.fetching.Pacing`).
- Each partition's position is committed for the flow's consumer group (`driftline-<flow>`)
  every `COMMIT_EVERY` seconds, with the offset a restart may resume from as the commit's
  metadata (`resume=<offset>`: that of the snapshot `SNAPSHOTS_BEHIND` before the newest).
  Nothing reads them back (recovery does); the broker's log store lists a partition only from
  where the slowest group that commits reads and deletes only what no group may read again,
  which keeps tansu's listings short (`servers/logstore`). Before it reads a partition, a flow
  commits where it starts: after a restart, what it reads again is listed again before its
  first fetch. A flow stopped for longer than the store follows it sees a gap at its next fetch,
  and commits its position again, which lists its messages again.
- `KafkaOutput` waits for every message of a batch to be acknowledged and raises when one is
  not. The flow process then stops before its snapshot covers the batch; the supervisor starts
  it again and it replays from its last snapshot (at-least-once; every sink de-duplicates).

Part names are `<partition>-<topic>`, as in Bytewax's connector, so recovery stores carry over.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec

from broker.clients import client_config, take_waiting
from driftline.clock import utc_now
from flows.fetching import GAP_GRACE, Cadence, Contiguous, Pacing
from flows.metrics import CONSUMER_LAG, LAST_MESSAGE, MESSAGES_IN, MESSAGES_OUT
from flows.timerslack import set_timer_slack

log = logging.getLogger(__name__)

Raw = KafkaSourceMessage[bytes | None, bytes | None]
Out = KafkaSinkMessage[bytes, bytes]

IDLE_SLEEPS = (0.001, 0.005, 0.02, 0.05)
"""After 1, 2, 3, 4+ empty polls in a row a partition sleeps this long before the next: short
at first (a request right after another waits ~1 ms), longer once the flow is really idle."""

REQUEST_PATH_SLEEPS = (0.001, 0.002)
"""The same for a flow a caller waits for, until it is idle (`IDLE_SLEEPS` then). The broker
hands out messages in bursts, one per fetch (every ~25 ms at a 50 ms fetch wait), so polls
between two bursts find nothing, and the longer sleeps of `IDLE_SLEEPS` held a burst up to
50 ms: with 64 clients the gateway-to-scored leg was p50 45 ms (28 ms with these) and the stack
answered 712 requests/s (886), against a bare produce-to-consume hop of p50 17 ms."""

LONGEST_SLEEP = 1.0
"""Seconds an idle partition sleeps at most, whatever the next probe: Bytewax advances a
partition's epoch only when it polls it, and the dataflow's epoch (its recovery snapshots and,
through backpressure, every other partition's reads, in every process of a cluster) waits for
the slowest partition."""

PROBE_TIMEOUT = 2.0
"""Seconds an idle consumer waits for its partitions' end offsets (a broker round trip)."""

COMMIT_EVERY = 0.5
"""Seconds between two offset commits of a consumer (only partitions that moved are sent): how
far behind its position the log store lists a partition for tansu."""

SNAPSHOTS_BEHIND = 2
"""A commit's resume offset is that of the snapshot this many before the newest: Bytewax resumes
from the last snapshot every worker finished, which may be one before the newest."""

RESUME = "resume="
"""Commit metadata: `resume=<offset>`, the lowest offset a restart of the flow may read again."""

START_COMMIT_SECONDS = 60.0
"""How long a partition's start is committed again while the broker does not answer."""

LAG_EVERY = 0.1
"""Seconds between two updates of a partition's consumer-lag gauge (a local look-up of the
watermark the last fetch brought: no request to the broker)."""


class _SharedConsumer:
    """One consumer for all partitions a worker reads; fetched messages wait in a queue per
    partition until that partition asks for them. Idle, it stops fetching and looks at the end
    offsets now and then (`Pacing`), or, given an idle fetch wait, a second consumer that fetches
    less often takes over. Given `take_every`, a paced consumer that does not fetch ahead reads
    while messages trickle in, taken at most that often (`Cadence`); the main one, which
    fetches ahead, reads while they come faster than a batch a second."""

    def __init__(
        self,
        config: dict[str, Any],
        batch_size: int,
        probe_every: float,
        idle_slack_ms: float,
        idle_fetch_wait_ms: int = 0,
        take_every: float = 0.0,
        idle_wait: float = 0.0,
        busy_slack_ms: float = 0.0,
        busy_wait: float = 0.0,
    ) -> None:
        # A position below the log start (retention removed it) moves to the first message
        # there is, never to the end: nothing is skipped.
        config = config | {"on_commit": self._on_commit, "auto.offset.reset": "earliest"}
        self._consumer = Consumer(config)
        # Fetches only once what it fetched is taken: taken less often, it fetches less often.
        # librdkafka then waits `fetch.queue.backoff.ms` (1 s by default) before it looks
        # again: pauses of 1-2 s made a flow look idle at 200 messages/s, and it stopped until
        # its next probe (lag spikes of 2,000-3,800 messages, measured).
        self._paced = (
            Consumer(
                config
                | {"queued.min.messages": 1, "fetch.queue.backoff.ms": round(take_every * 1000)}
            )
            if take_every > 0
            else None
        )
        # With an idle fetch wait, a second consumer reads while idle: fewer fetches a second.
        self._quiet = (
            Consumer(config | {"fetch.wait.max.ms": idle_fetch_wait_ms})
            if idle_fetch_wait_ms > 0
            else None
        )
        self._active: Consumer | None = self._consumer  # assigned and fetching; None: paused
        self._brokers = config["bootstrap.servers"]
        self._admin: AdminClient | None = None  # made at the first probe
        self._batch_size = batch_size
        self._queues: dict[tuple[str, int], deque[Raw]] = {}
        self._offsets = Contiguous(GAP_GRACE)
        self._pacing = Pacing(probe_every=probe_every)
        self._cadence = Cadence(take_every, busy_rate=batch_size)
        self._slack_ms = {True: idle_slack_ms, False: busy_slack_ms}  # by idle or not
        self._slack_idle: bool | None = None  # not set yet
        self._snapshots: dict[tuple[str, int], deque[int]] = {}
        self._committed: dict[tuple[str, int], tuple[int, str]] = {}
        self._sent: dict[tuple[str, int], tuple[int, str]] = {}
        """The last commit sent per partition: the callback carries its offset, not always its
        metadata (tansu's answer has none)."""
        self._commit_at = 0.0
        self._waits = {True: idle_wait, False: busy_wait}  # by idle or not
        self.waited = False
        """Whether the last `take` waited in the consumer (`idle_wait`, `busy_wait`) for one."""

    def add(self, topic: str, partition: int, offset: int) -> None:
        self._switch(self._consumer)  # a new partition: read everything from here on
        self._queues[(topic, partition)] = deque()
        start = offset if offset >= 0 else self._log_start(topic, partition)
        self._offsets.start(topic, partition, start)
        self._snapshots[(topic, partition)] = deque([start], SNAPSHOTS_BEHIND + 1)
        self._commit_start(topic, partition, start)
        self._consumer.incremental_assign([TopicPartition(topic, partition, start)])

    def _commit_start(self, topic: str, partition: int, start: int) -> None:
        """Commit where reading starts, and wait for it: the log store lists the partition from
        the lowest committed offset, and after a restart the flow reads again from below the
        offset it committed last. Unanswered for `START_COMMIT_SECONDS`, raise: the supervisor
        starts the flow again."""
        metadata = f"{RESUME}{start}"
        wanted = TopicPartition(topic, partition, start, metadata=metadata)
        deadline = time.monotonic() + START_COMMIT_SECONDS
        while True:
            try:
                self._consumer.commit(offsets=[wanted], asynchronous=False)
                break
            except KafkaException as error:
                if time.monotonic() > deadline:
                    raise
                log.warning("start not committed yet", extra={"error": str(error)})
                time.sleep(1.0)
        self._committed[(topic, partition)] = (start, metadata)

    def _log_start(self, topic: str, partition: int) -> int:
        """The first offset a partition read from the beginning holds: its first message must
        be that one. tansu can show a later batch first (see `Contiguous`), and taking it as
        the start would skip the earlier one for good. Unanswered, 0: a gap below the real
        start is then waited on for `GAP_GRACE` and taken."""
        try:
            marks = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=PROBE_TIMEOUT
            )
        except KafkaException:
            marks = None
        if marks is None:
            log.warning("no log start offset", extra={"topic": topic, "partition": partition})
            return 0
        return max(marks[0], 0)

    def remove(self, topic: str, partition: int) -> bool:
        """Stop reading a partition; True when no partition is left."""
        self._queues.pop((topic, partition), None)
        self._snapshots.pop((topic, partition), None)
        if self._active is not None:
            self._active.incremental_unassign([TopicPartition(topic, partition)])
        return not self._queues

    def snapshotted(self, topic: str, partition: int, offset: int) -> None:
        """A partition's snapshot offset: the resume offset of later commits."""
        self._snapshots[(topic, partition)].append(max(offset, 0))
        self._commit()

    def _commit(self) -> None:
        """Every `COMMIT_EVERY` seconds, commit each partition that moved: its position, and
        the offset a restart can no longer go below as metadata (asynchronously: a failed
        commit is sent again)."""
        now = time.monotonic()
        if now < self._commit_at:
            return
        self._commit_at = now + COMMIT_EVERY
        due = []
        for key, snapshots in self._snapshots.items():
            wanted = (self._offsets.expected(*key), f"{RESUME}{snapshots[0]}")
            if self._committed.get(key) != wanted:
                due.append(TopicPartition(*key, wanted[0], metadata=wanted[1]))
                self._sent[key] = wanted
        if due:  # through the consumer that is polled, which serves the callback
            self._polled.commit(offsets=due, asynchronous=True)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None:
            log.debug("offset commit failed", extra={"error": str(error)})
            return
        for tp in partitions:
            sent = self._sent.get((tp.topic, tp.partition))
            if tp.error is None and sent is not None and sent[0] == tp.offset:
                self._committed[(tp.topic, tp.partition)] = sent

    def take(self, topic: str, partition: int) -> list[Raw]:
        queue = self._queues[(topic, partition)]
        self.waited = False
        if not queue:
            # Fetch, then decide: whether it is idle is judged on what the consumer has fetched
            # by now. Bytewax may poll a partition seconds apart (it holds a partition back while
            # the dataflow's epoch catches up); deciding first would unassign a consumer that
            # was assigned at the last poll before taking what it fetched since, at every poll.
            if self._active is not self._paced or self._cadence.due():
                self._fetch()
            self._pace()
            self._slacken()
        taken = [queue.popleft() for _ in range(min(len(queue), self._batch_size))]
        self._commit()
        return taken

    def quiet_for(self) -> float:
        """Seconds its partitions may sleep: nothing comes before the next probe."""
        return self._pacing.until_probe()

    def idle(self) -> bool:
        """No message for a while (`Pacing`)."""
        return self._pacing.idle()

    def _slacken(self) -> None:
        """Give the worker thread (this one) its timer slack for idle or busy: Bytewax's worker
        wakes every 1 ms either way (`flows.timerslack`)."""
        idle = self._pacing.idle()
        if idle != self._slack_idle:
            set_timer_slack(self._slack_ms[idle])
            self._slack_idle = idle

    def _pace(self) -> None:
        if self._pacing.probe_due() and self._grown():
            self._pacing.woken()
        self._switch(self._reader())

    def _reader(self) -> Consumer | None:
        """The consumer that should read now: while messages come, the paced one if there is
        one and they trickle in, else the main one; once idle, the quiet one if there is one,
        else none between probes."""
        if not self._pacing.idle():
            if self._paced is not None and not self._cadence.busy():
                return self._paced
            return self._consumer
        if self._quiet is not None:
            return self._quiet
        return self._consumer if self._pacing.fetching() else None

    @property
    def _polled(self) -> Consumer:
        """The consumer polled for messages and callbacks (the main one while paused)."""
        return self._consumer if self._active is None else self._active

    def _switch(self, to: Consumer | None) -> None:
        """Read with `to` (None: pause) from where reading left off. Not `pause`/`resume`:
        librdkafka fetches a resumed partition only at its next 1 s timer (0.5-1 s measured
        here); an assignment with offsets fetches at once (11 ms)."""
        if to is self._active:
            return
        if self._active is not None:
            self._active.unassign()
        self._active = to
        if to is not None:
            to.assign(
                [
                    TopicPartition(topic, partition, self._offsets.expected(topic, partition))
                    for topic, partition in self._queues
                ]
            )

    def _grown(self) -> bool:
        """Whether a partition holds messages past what this consumer has taken: one request
        for every partition's end offset (tansu and its store pay per request; one per
        partition cost twice as much, measured). An unanswered look counts as grown, so nothing
        waits on a failed probe."""
        if self._admin is None:
            self._admin = AdminClient(client_config(self._brokers))
        wanted = {TopicPartition(*key): OffsetSpec.latest() for key in self._queues}
        try:
            answers = self._admin.list_offsets(wanted, request_timeout=PROBE_TIMEOUT)
            ends = {
                (tp.topic, tp.partition): answer.result(timeout=PROBE_TIMEOUT).offset
                for tp, answer in answers.items()
            }
        except (KafkaException, concurrent.futures.TimeoutError):
            return True
        return any(end > self._offsets.expected(*key) for key, end in ends.items())

    def _fetch(self) -> None:
        rewound: set[tuple[str, int]] = set()
        wait = self._waits[self._pacing.idle()]
        self.waited = wait > 0 and self._active is not None
        if self.waited:
            messages = take_waiting(self._polled, self._batch_size, wait)
        else:
            messages = self._polled.consume(self._batch_size, 0)
        self._pacing.received(len(messages))
        self._cadence.took(len(messages), full=len(messages) >= self._batch_size)
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("kafka consumer error", extra={"error": str(error)})
                continue
            key = (msg.topic() or "", msg.partition() or 0)
            queue = self._queues.get(key)
            if queue is None or key in rewound:  # removed just now, or being read again
                continue
            verdict = self._offsets.check(*key, msg.offset() or 0)
            if verdict == "rewind":
                rewound.add(key)
                self._polled.seek(TopicPartition(*key, self._offsets.expected(*key)))
                # Commit the position again: a flow stopped for a while has dropped out of
                # where the log store lists the partition from, and this brings it back.
                self._committed.pop(key, None)
            elif verdict == "take":
                queue.append(
                    KafkaSourceMessage(
                        key=msg.key(),
                        value=msg.value(),
                        topic=msg.topic(),
                        headers=[],  # driftline sets none
                        latency=msg.latency(),
                        offset=msg.offset(),
                        partition=msg.partition(),
                        timestamp=msg.timestamp(),
                    )
                )

    def high_watermark(self, topic: str, partition: int) -> tuple[int, int] | None:
        """(low, high) watermarks as of the last fetch response: no request to the broker."""
        try:
            low, high = self._polled.get_watermark_offsets(
                TopicPartition(topic, partition), cached=True
            )
        except KafkaException:
            return None
        return None if high < 0 else (max(low, 0), high)

    def close(self) -> None:
        self._consumer.close()
        for other in (self._quiet, self._paced):
            if other is not None:
                other.close()
        self._admin = None


class _Partition(StatefulSourcePartition[Raw, int]):
    def __init__(self, owner: KafkaInput, key: tuple[str, int], topic: str, partition: int):
        self._owner, self._key = owner, key
        self._topic, self._partition = topic, partition
        self._shared = owner.shared(key)
        self._offset: int = OFFSET_BEGINNING
        self._empty_polls = 0
        self._awake: datetime | None = None
        self._taken = MESSAGES_IN.labels(owner.flow, topic)
        self._last_message = LAST_MESSAGE.labels(owner.flow, topic)
        self._lag = CONSUMER_LAG.labels(owner.flow, topic, str(partition))
        self._lag_at = 0.0

    def start_at(self, offset: int | None) -> None:
        self._offset = OFFSET_BEGINNING if offset is None else offset
        self._shared.add(self._topic, self._partition, self._offset)

    def next_batch(self) -> list[Raw]:
        batch = self._shared.take(self._topic, self._partition)
        if batch:
            last = batch[-1].offset
            assert last is not None  # a consumed message always has one
            self._offset = last + 1
            self._empty_polls, self._awake = 0, None
            self._taken.inc(len(batch))
            self._last_message.set_to_current_time()
        elif self._shared.waited:  # it waited in the consumer: look again at once
            self._empty_polls, self._awake = self._empty_polls + 1, None
        else:
            naps = IDLE_SLEEPS if self._shared.idle() else self._owner.sleeps
            sleep = max(
                naps[min(self._empty_polls, len(naps) - 1)],
                min(self._shared.quiet_for(), LONGEST_SLEEP),
            )
            self._empty_polls += 1
            self._awake = utc_now() + timedelta(seconds=sleep)
        now = time.monotonic()
        if now >= self._lag_at:
            self._lag_at = now + LAG_EVERY
            self._measure_lag()
        return batch

    def _measure_lag(self) -> None:
        marks = self._shared.high_watermark(self._topic, self._partition)
        if marks is not None:
            low, high = marks
            position = low if self._offset < 0 else self._offset
            self._lag.set(max(high - position, 0))  # tansu's end offsets can be a batch early

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> int:
        self._shared.snapshotted(self._topic, self._partition, self._offset)
        return self._offset

    def close(self) -> None:
        self._owner.release(self._key, self._topic, self._partition)


class KafkaInput(FixedPartitionedSource[Raw, int]):
    """Every partition of `topics`, from its recovered offset (or the beginning)."""

    def __init__(
        self,
        brokers: str,
        topics: Iterable[str],
        batch_size: int,
        config: dict[str, Any],
        probe_every: float = 4.0,
        idle_slack_ms: float = 0.0,
        flow: str = "",
        idle_fetch_wait_ms: int = 0,
        sleeps: tuple[float, ...] = IDLE_SLEEPS,
        take_every: float = 0.0,
        idle_wait: float = 0.0,
        busy_slack_ms: float = 0.0,
        busy_wait: float = 0.0,
    ) -> None:
        """`probe_every`: once idle, stop fetching and look for new messages this often
        (`Pacing`; 0: fetch all the time). `idle_slack_ms`: once idle, the worker may wake this
        late (`flows.timerslack`); `busy_slack_ms`: the same while messages come. `flow`: the
        flow's name in its metrics. `idle_fetch_wait_ms`: with `probe_every` 0, an idle source
        keeps fetching with this wait instead (fewer fetches a second; the first message after a
        quiet spell may wait up to half of it).
        `sleeps`: how long a partition sleeps after empty polls (`IDLE_SLEEPS`). `take_every`:
        while messages trickle in, take them (and so fetch) at most this often (`Cadence`; 0:
        whenever a partition asks). `idle_wait`: once idle, a poll waits in the consumer up to
        this many seconds for a message instead of returning at once, so the worker sleeps until
        one comes (0: it polls and sleeps `sleeps`, waking up every few ms); `busy_wait`: the
        same while messages come."""
        self.sleeps = sleeps
        self._options: dict[str, Any] = {
            "batch_size": batch_size,
            "probe_every": probe_every,
            "idle_slack_ms": idle_slack_ms,
            "idle_fetch_wait_ms": idle_fetch_wait_ms,
            "take_every": take_every,
            "idle_wait": idle_wait,
            "busy_slack_ms": busy_slack_ms,
            "busy_wait": busy_wait,
        }
        """What each worker's `_SharedConsumer` is made with, beside its config."""
        self.flow = flow
        self._brokers = brokers
        self._topics = list(topics)
        self._config = config
        self._consumers: dict[tuple[str, int], _SharedConsumer] = {}
        self._lock = threading.Lock()

    def list_parts(self) -> list[str]:
        admin = AdminClient(client_config(self._brokers))
        found = admin.list_topics(timeout=30).topics
        parts = []
        for topic in self._topics:
            if topic not in found or found[topic].error is not None:
                raise RuntimeError(f"topic {topic!r} not found: is the broker started?")
            parts += [f"{p}-{topic}" for p in sorted(found[topic].partitions)]
        return parts

    def shared(self, key: tuple[str, int]) -> _SharedConsumer:
        with self._lock:
            if key not in self._consumers:
                config = client_config(self._brokers) | self._config
                self._consumers[key] = _SharedConsumer(config, **self._options)
            return self._consumers[key]

    def release(self, key: tuple[str, int], topic: str, partition: int) -> None:
        with self._lock:
            shared = self._consumers.get(key)
            if shared is not None and shared.remove(topic, partition):
                shared.close()
                del self._consumers[key]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Partition:
        index, topic = for_part.split("-", 1)
        # One consumer per step and worker thread: a worker polls its partitions in turn.
        key = (step_id, threading.get_ident())
        part = _Partition(self, key, topic, int(index))
        part.start_at(resume_state)
        return part


class DeliveryFailed(RuntimeError):
    """The broker did not acknowledge a message: the flow must stop and replay."""


class _Producer(StatelessSinkPartition[Out]):
    def __init__(self, config: dict[str, Any], flow: str = "") -> None:
        self._producer = Producer(config)
        self._timeout = int(config.get("message.timeout.ms", 300_000)) / 1000
        self._flow = flow

    def write_batch(self, items: list[Out]) -> None:
        failures: list[str] = []

        def delivered(error: KafkaError | None, _msg: object) -> None:
            if error is not None:
                failures.append(str(error))

        for item in items:
            self._produce(item, delivered)
        started = time.monotonic()
        while self._producer.flush(1.0) > 0:
            waited = time.monotonic() - started
            log.warning("waiting for the broker to acknowledge", extra={"seconds": round(waited)})
            if waited > self._timeout + 5:
                raise DeliveryFailed(f"no acknowledgement within {self._timeout:g}s")
        if failures:
            raise DeliveryFailed(f"{len(failures)} message(s) not delivered: {failures[0]}")
        for topic, count in Counter(item.topic for item in items).items():
            MESSAGES_OUT.labels(self._flow, topic).inc(count)

    def _produce(self, item: Out, delivered: Any) -> None:
        assert item.topic is not None  # `flows.wiring.publish` names the topic of each message
        while True:
            try:
                self._producer.produce(
                    item.topic, value=item.value, key=item.key, on_delivery=delivered
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)

    def close(self) -> None:
        self._producer.flush(self._timeout)


class KafkaOutput(DynamicSink[Out]):
    """Each worker produces through its own producer; a batch counts only once acknowledged."""

    def __init__(self, config: dict[str, Any], flow: str = "") -> None:
        self._config = config
        self._flow = flow

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Producer:
        return _Producer(self._config, self._flow)
