"""What the benchmarks share: a stack of their own, a compiled load generator, and /proc.

`Stack` runs `driftline up` in a temporary folder on free ports; Debian's `wrk` and `hey` drive
it (compiled, so the client does not eat the measurement on 2 cores; `wrk` the closed loop and
Poisson arrivals, `hey` a fixed offered rate); `cpu_per_process`, `rss_per_process` and `pss_total`
read /proc for every process the supervisor runs.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx

from driftline.settings.groups import FlowSettings
from servers.recipe import free_port, free_ports

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    """`driftline up` with `env` on top of free ports, in `home`."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        flow_ports = free_ports(FlowSettings.METRICS_PORTS)  # a block: singles stay clear of it
        defaults = {
            "DRIFTLINE_HOME": str(self.home),
            "DRIFTLINE_BROKERS": f"127.0.0.1:{free_port()}",
            "DRIFTLINE_GATEWAY_PORT": str(free_port()),
            "DRIFTLINE_LOGSTORE_PORT": str(free_port()),
            "DRIFTLINE_FLOW_PORT_BASE": str(flow_ports),
            "DRIFTLINE_MODEL_BOOTSTRAP_SAMPLE": "3000",
        }
        self.env = defaults | self.env

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['DRIFTLINE_GATEWAY_PORT']}"

    def start(self, timeout: float = 600) -> None:
        """Start the stack in a session of its own. A SIGTERM to the benchmark (`timeout`, a
        CI runner) then exits through its `finally: stop()`, not around it: the stack would
        otherwise outlive it and load every later measurement on the machine."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
        log = (self.home / "up.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "up"],
            env=os.environ | self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"driftline up exited; see {self.home / 'up.log'}")
            time.sleep(1)
        raise TimeoutError(f"{self.url} not ready after {timeout:.0f}s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(120)

    def lake_rows(self, sql: str, params: list[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
        """`sql` on the stack's lake, read-only (safe beside its lake writer)."""
        import lakehouse
        from driftline import settings

        con = lakehouse.connect(settings.load({}, home=self.home).lake, read_only=True)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def logstore_counts(self) -> dict[str, float]:
        """The broker's log store's requests so far by kind, and `listed`: the objects its
        listings returned (its `/metrics`, as `stack.json` names it)."""
        from app.status import logstore_counts, parse, scrape

        url = self._state()["units"]["logstore"]["metrics"]["logstore"]
        return logstore_counts(parse(scrape(url)))

    def _state(self) -> dict[str, Any]:
        """What `driftline up` wrote to `<home>/run/stack.json`."""
        state: dict[str, Any] = json.loads((self.home / "run" / "stack.json").read_text())
        return state

    def processes(self) -> dict[str, int]:
        """Every process of the stack by name: the supervisor's units and their children."""
        state = self._state()
        found = {"supervisor": int(state["supervisor"])}
        for unit in state["units"].values():
            for name, pid in unit["processes"].items():
                found[name] = pid
                for i, child in enumerate(children(pid)):
                    found[f"{name}.{i}"] = child
        return found


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return sorted(out)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far; 0 once it is gone."""
    return _cpu_ticks(pid) / TICKS


def _cpu_ticks(pid: int, waited_children: bool = False) -> int:
    """User + system ticks of a process (0 once it is gone), with `waited_children` also
    those of the children it has waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    own = int(fields[11]) + int(fields[12])
    return own + int(fields[13]) + int(fields[14]) if waited_children else own


def cpu_per_process(processes: dict[str, int], seconds: float) -> dict[str, float]:
    """Share of one core each process used over `seconds` (1.0 = a whole core). A process that
    ended in between is left out: what it used is gone with it (it read as a negative share)."""
    before = {name: _cpu_ticks(pid) for name, pid in processes.items()}
    time.sleep(seconds)
    after = {name: _cpu_ticks(pid) for name, pid in processes.items()}
    return {
        name: (after[name] - before[name]) / TICKS / seconds
        for name in processes
        if after[name] >= before[name]
    }


def cpu_meanwhile(processes: dict[str, int], seconds: float) -> Callable[[], dict[str, float]]:
    """Start measuring `cpu_per_process` over the next `seconds` on a thread of its own, while
    the caller drives a load; the function returned waits for the figures."""
    cpu: dict[str, float] = {}
    sampler = threading.Thread(target=lambda: cpu.update(cpu_per_process(processes, seconds)))
    sampler.start()

    def result() -> dict[str, float]:
        sampler.join()
        return cpu

    return result


STEAL = 7
"""Index of `steal` among the machine's CPU times (user, nice, system, idle, iowait, irq,
softirq, steal; guest time is counted in user and nice already)."""


def machine_times() -> list[int]:
    """The machine's CPU times so far, in ticks, from the first line of /proc/stat."""
    with open("/proc/stat") as stat:
        return [int(value) for value in stat.readline().split()[1 : STEAL + 2]]


def steal_percent(before: list[int], after: list[int]) -> float:
    """The share of the machine's CPU time between two readings of `machine_times` that its
    hypervisor gave to other guests (`steal`), in percent.

    >>> steal_percent([100, 0, 50, 800, 0, 0, 10, 40], [200, 0, 100, 1600, 0, 0, 20, 80])
    4.0
    """
    spent = [b - a for a, b in zip(before, after, strict=True)]
    return 100 * spent[STEAL] / max(sum(spent), 1)


@dataclass
class Stolen:
    """What the hypervisor took from the machine over a measurement."""

    percent: float
    """Its share of the machine's CPU time (`steal_percent`)."""
    worst_ms: float
    """The most it took within one `STEAL_WINDOW`, summed over the CPUs: a short burst is a
    stall of every process, which an average over a run hides."""


STEAL_WINDOW = 0.1
"""Seconds between two readings of the steal counter while a load runs."""


def stolen_meanwhile() -> Callable[[], Stolen]:
    """Start counting the CPU time the hypervisor takes from this machine, on a thread of its
    own; the function returned stops and gives it. On a shared host a run's tail latency goes
    with it, in part (README, "Against issue 10"), so the benchmarks print it beside latencies."""
    readings = [machine_times()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(STEAL_WINDOW):
            readings.append(machine_times())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def result() -> Stolen:
        stop.set()
        sampler.join()
        readings.append(machine_times())
        bursts = [b[STEAL] - a[STEAL] for a, b in pairwise(readings)]
        worst = 1000 * max(bursts, default=0) / TICKS
        return Stolen(steal_percent(readings[0], readings[-1]), worst)

    return result


def _proc_kib(pid: int, file: str, field: str) -> int | None:
    """The `field:  N kB` of /proc/<pid>/<file>: None if the process is gone, 0 without that line
    (a zombie has no memory lines)."""
    try:
        text = Path(f"/proc/{pid}/{file}").read_text()
    except OSError:
        return None
    found = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) if found else 0


def rss_per_process(processes: dict[str, int]) -> dict[str, float]:
    """Resident memory of each process, in MiB."""
    out = {}
    for name, pid in processes.items():
        kib = _proc_kib(pid, "status", "VmRSS")
        if kib is not None:
            out[name] = kib / 1024
    return out


def pss_total(processes: dict[str, int]) -> float:
    """What the processes hold together, in MiB: their proportional set sizes, each shared page
    (a library every flow maps) split among the processes that map it.

    RSS counts such a page once per process, and its file-backed part varied between stacks of
    the same code: in the first stack after `make install` the idle stack's file-backed RSS was
    587 MiB, against 434 in a stack started later on the same machine (anonymous memory 518
    against 528; total RSS 1,105 against 962 MiB; ad hoc). Freshly written libraries in the page
    cache are a plausible cause, not a proven one."""
    found = (_proc_kib(pid, "smaps_rollup", "Pss") for pid in processes.values())
    total = sum(kib for kib in found if kib is not None)
    return total / 1024


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: dict[str, int]
    """HTTP status -> responses."""

    @property
    def failed(self) -> int:
        return sum(n for code, n in self.statuses.items() if code != "200")


def hey(
    url: str,
    seconds: float,
    clients: int,
    body: str | None = None,
    rate: float | None = None,
    method: str | None = None,
    headers: dict[str, str] | None = None,
) -> Load:
    """`hey` for `seconds` with `clients` in parallel: a POST of `body` (JSON), or a GET, or
    `method` with `headers`; `rate` is the total offered requests/s (open loop), else as fast
    as answers come (closed loop)."""
    argv = ["hey", "-z", f"{seconds:g}s", "-c", str(clients)]
    if body is not None:
        argv += ["-m", method or "POST", "-T", "application/json", "-d", body]
    elif method is not None:
        argv += ["-m", method]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if rate:
        argv += ["-q", f"{rate / clients:g}"]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout

    def number(pattern: str) -> float:
        found = re.search(pattern, out)
        return float(found.group(1)) if found else float("nan")

    return Load(
        rps=number(r"Requests/sec:\s+([\d.]+)"),
        p50_ms=number(r"50% in ([\d.]+) secs") * 1000,
        p99_ms=number(r"99% in ([\d.]+) secs") * 1000,
        statuses={code: int(n) for code, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)},
    )


POISSON_SCRIPT = Path(__file__).with_name("poisson.lua")
POST_SCRIPT = Path(__file__).with_name("post.lua")


def closed_loop(url: str, seconds: float, clients: int, body: str | None = None) -> Load:
    """`clients` connections each sending its next request as soon as its answer comes, for
    `seconds`, from `wrk` on one thread: a POST of `body` (JSON), else a GET. `wrk` costs the
    machine a fifth of what `hey` does (3-4% of a core against 10-19% at ~900 requests/s on
    this 2-core machine, ad hoc), so it leaves the cores to what it measures; `hey` remains
    for the open loop (`hey(..., rate=)`), which `wrk` cannot pace."""
    script = ["-s", str(POST_SCRIPT)] if body is not None else []
    argv = ["-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "10s", *script]
    return _wrk(argv, url, {"BODY": body or ""})


def poisson(url: str, rate: float, seconds: float, body: str, seed: int = 0) -> Load:
    """POSTs of `body` arriving as a Poisson process at about `rate` a second, sent by `wrk`:
    each of 2 x `rate` connections waits an exponential time (mean 2 s) before each request.
    hey's open loop (`rate=`) paces each worker alone, and its workers fire together, in bursts
    of all of them every 1/q s; here arrivals are independent, as from many users.

    A connection waits up to several seconds between requests, so the server must keep idle
    connections longer (the gateway: `DRIFTLINE_GATEWAY_KEEP_ALIVE_SECONDS`, 75): wrk reconnects
    a connection the server closed without cancelling its pending wait, and the connection then
    runs two chains of requests. Against uvicorn's default of 5 s this script offered 268
    requests/s instead of 200 over 30 s, more with every closed connection (measured). Socket
    errors count as failed, so a run that offered more than `rate` says so."""
    connections = max(2, round(2 * rate))
    env = {"BODY": body, "DELAY_MS": f"{connections / rate * 1000:g}", "SEED": str(seed)}
    argv = ["-t2", f"-c{connections}", f"-d{seconds:g}s", "-s", str(POISSON_SCRIPT)]
    return _wrk(argv, url, env)


def _wrk(argv: list[str], url: str, env: dict[str, str]) -> Load:
    """Run `wrk` with `argv` against `url` and read its report."""
    out = subprocess.run(
        ["wrk", "--latency", *argv, url],
        env=os.environ | env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency_ms(percent: str) -> float:
        found = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)$", out, re.MULTILINE)
        if not found:
            return float("nan")
        return float(found.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found.group(2)]

    def count(pattern: str) -> int:
        found = re.search(pattern, out)
        return int(found.group(1)) if found else 0

    answered = count(r"(\d+) requests in")
    not_ok, timeouts = count(r"Non-2xx or 3xx responses: (\d+)"), count(r"timeout (\d+)")
    errors = sum(count(rf"{kind} (\d+)") for kind in ("connect", "read", "write"))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return Load(
        rps=float(rps.group(1)) if rps else float("nan"),
        p50_ms=latency_ms("50"),
        p99_ms=latency_ms("99"),
        statuses={
            "200": answered - not_ok - timeouts,
            "not 2xx": not_ok,
            "timeout": timeouts,
            "socket error": errors,
        },
    )


SETTLING = ("monitor", "lakewriter")
"""The flows that go on working after the warm-up's answers: the monitor's first reports took 7%
of a core for 10 s more after the fixed 10 s wait this replaced, in a slow hour."""


def warm_up(stack: Stack, body: str, timeout: float = 120) -> None:
    """A few requests (models loaded, connections open), then wait until the monitor and the
    lake writer are done with them: two 2 s spells with each, children included, under 2% of a
    core (idle: 0.2-0.5%), after at least 10 s."""
    hey(f"{stack.url}/inference", 5, 8, body)
    time.sleep(10)
    settling = [pid for name, pid in stack.processes().items() if name in SETTLING]
    quiet, deadline = 0, time.monotonic() + timeout
    while quiet < 2 and time.monotonic() < deadline:
        before = [_tree_ticks(pid) for pid in settling]
        time.sleep(2)
        after = [_tree_ticks(pid) for pid in settling]
        busy = any((b - a) / TICKS / 2 >= 0.02 for a, b in zip(before, after, strict=True))
        quiet = 0 if busy else quiet + 1


def _tree_ticks(pid: int) -> int:
    """CPU ticks of a process and all its children, those it has waited for included: the
    monitor copies each new model version out of MLflow in a child (`models.fetch`) and works
    on it once the child is done, so while the child works the monitor itself looks quiet."""
    return _cpu_ticks(pid, waited_children=True) + sum(map(_tree_ticks, children(pid)))


def kafka_relay_ms(
    brokers: str, fetch_wait_ms: int, rate: float, seconds: float, seed: int = 0
) -> list[float]:
    """Bare Kafka, the request path's two hops without HTTP, Bytewax or a model: messages at
    `rate`/s (Poisson) to one topic, a relay that consumes each and produces it to a second,
    and a reader of the second; milliseconds from the first produce to the last consume.
    Producers batch for 2 ms and readers commit every 0.5 s, as the flows' do."""
    from confluent_kafka import Producer

    hops = ("bench.relay.in", "bench.relay.out")
    _topics(brokers, hops)
    config = {"bootstrap.servers": brokers, "linger.ms": 2, "acks": "all"}
    producer, relayed = Producer(config), Producer(config)
    relay_in, relay_out = (_Reader(brokers, topic, fetch_wait_ms) for topic in hops)
    sending, stop = threading.Event(), threading.Event()
    sent = 0

    def send() -> None:
        nonlocal sent
        arrivals = random.Random(seed)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            producer.produce(hops[0], str(time.perf_counter()).encode())
            producer.poll(0)
            sent += 1
            time.sleep(arrivals.expovariate(rate))
        producer.flush(10)
        sending.set()

    def relay() -> None:
        while not stop.is_set():
            for msg in relay_in.take():
                relayed.produce(hops[1], msg.value())
            relayed.poll(0)
        relayed.flush(10)

    threads = [threading.Thread(target=send), threading.Thread(target=relay)]
    for thread in threads:
        thread.start()
    out: list[float] = []
    deadline = time.monotonic() + seconds + 10
    while not (sending.is_set() and len(out) >= sent) and time.monotonic() < deadline:
        taken = relay_out.take()
        now = time.perf_counter()
        out += [(now - float(msg.value() or b"0")) * 1000 for msg in taken]
    stop.set()
    for thread in threads:
        thread.join()
    relay_in.close()
    relay_out.close()
    return out


def _topics(brokers: str, names: tuple[str, ...]) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": brokers})
    missing = [NewTopic(n, 1, 1) for n in names if n not in admin.list_topics(timeout=5).topics]
    for future in admin.create_topics(missing).values() if missing else ():
        future.result(10)


class _Reader:
    """A consumer of one topic's one partition, past what earlier runs left, that commits its
    position every 0.5 s like the flows (the log store then lists only what is unread)."""

    COMMIT_EVERY = 0.5

    def __init__(self, brokers: str, topic: str, fetch_wait_ms: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._topic, self._position, self._committed = topic, 0, time.monotonic()
        self._consumer = Consumer(
            {"bootstrap.servers": brokers, "group.id": "bench", "fetch.wait.max.ms": fetch_wait_ms}
        )
        self._consumer.assign([TopicPartition(topic, 0, 0)])
        while self.take(wait=0.5):
            pass

    def take(self, wait: float = 0.1) -> list[Any]:
        """What is there now, after waiting up to `wait` for the first."""
        from confluent_kafka import TopicPartition

        from broker.clients import take_waiting

        taken = [msg for msg in take_waiting(self._consumer, 500, wait) if msg.error() is None]
        if taken:
            last = taken[-1].offset()
            assert last is not None  # a consumed message always has one
            self._position = last + 1
        if time.monotonic() - self._committed > self.COMMIT_EVERY and self._position:
            offsets = [TopicPartition(self._topic, 0, self._position)]
            self._consumer.commit(offsets=offsets, asynchronous=True)
            self._committed = time.monotonic()
        return taken

    def close(self) -> None:
        self._consumer.close()


def kafka_round_trip_ms(brokers: str, fetch_wait_ms: int, n: int = 200) -> list[float]:
    """Bare Kafka: produce one message and consume it back, `n` times, on a topic of its own,
    with the consumers' fetch wait of the stack."""
    from confluent_kafka import Producer

    topic = "bench.round-trip"
    _topics(brokers, (topic,))
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
    consumer = _Reader(brokers, topic, fetch_wait_ms)
    out = []
    for _ in range(n):
        marker = uuid.uuid4().bytes
        started = time.perf_counter()
        producer.produce(topic, marker)
        producer.flush()
        while not any(msg.value() == marker for msg in consumer.take(wait=1.0)):
            pass
        out.append((time.perf_counter() - started) * 1000)
    consumer.close()
    return out
