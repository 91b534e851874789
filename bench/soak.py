"""Soak: the whole stack at a fixed rate for a long time, with feedback and bad input mixed in.

    .venv/bin/python -m bench.soak [--minutes 30] [--rate 200] [--every 60]

Starts `driftline up` in a temporary folder (two TF-IDF models), then for `--minutes`:
- Debian's `hey` offers 90% of `--rate` as `POST /inference` of one tagged text (open loop);
- a Python client offers the other 10% as `POST /inference` followed by `PATCH /inference`
  feedback for each answer, plus one invalid body a second (the gateway's 422) and one
  unreadable message a second written straight to `inference.requests` (a dead letter);
- every `--every` seconds it prints CPU and RSS per process.
The monitor's window and the feedback join's time-to-live are `--horizon` (5 min, against 1 h
by default), so the flows' state reaches its steady size within the run; the gateway's result
cache (`DRIFTLINE_RESULT_CACHE_SIZE`, 100,000) fills in about 8 minutes at 200/s. Retraining is
off: the one repeated text drifts within minutes, and a training would load the machine.
At the end it prints what the lake holds against what was accepted (every 200 or 504 answer,
every 202 feedback, every unreadable message as a dead letter) and whether every process's RSS
stayed within 10% after warm-up: the horizon and the cache's filling, and at least the first
40% of the run (a run shorter than that is not judged: at 200/s use 15 minutes or more).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.harness import Stack, cpu_per_process, hey, rss_per_process
from driftline import settings
from driftline.topics import REQUESTS

WARM_UP = 0.4
"""Share of the run before RSS must stay flat, at the least (`warm_up`)."""


@dataclass
class Client:
    """The Python share of the load: inferences with feedback, and bad input."""

    url: str
    brokers: str
    tag: str
    rate: float
    accepted: int = 0
    feedback: int = 0
    invalid: int = 0
    unreadable: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.brokers})
        started, i = time.monotonic(), 0
        # Open loop: requests overlap, so a slow answer does not lower the offered rate.
        with (
            httpx.Client(base_url=self.url, timeout=30) as http,
            ThreadPoolExecutor(32) as pool,
        ):
            while not self.stop.is_set():
                time.sleep(max(0.0, started + i / self.rate - time.monotonic()))
                pool.submit(self._one, http, i)
                if i % max(1, round(self.rate)) == 0:  # once a second
                    bad = http.post("/inference", content=b'{"data": ')
                    producer.produce(REQUESTS.base, value=b"soak: not json %d" % i)
                    producer.flush(10)
                    with self.lock:
                        self.invalid += bad.status_code in (400, 422)
                        self.unreadable += 1
                i += 1

    def _one(self, http: httpx.Client, i: int) -> None:
        try:
            answer = http.post("/inference", json={"data": f"{self.tag} soak fb {i}"})
            if answer.status_code not in (200, 504):
                return
            with self.lock:
                self.accepted += 1
            if answer.status_code == 200:
                body = {"inference_id": answer.json()["inference_id"], "feedback": i % 2}
                scored = http.patch("/inference", json=body).status_code == 202
                with self.lock:
                    self.feedback += scored
        except httpx.HTTPError:
            return


def lake_counts(stack: Stack, tag: str, since: float) -> tuple[int, int, int]:
    """(inferences, feedback scores, inference dead letters) the lake holds from this run."""
    [(inferences, feedback, dead)] = stack.lake_rows(
        "SELECT (SELECT count(*) FROM inferences WHERE data LIKE $tag), "
        "(SELECT count(*) FROM feedback f JOIN inferences i USING (inference_id) "
        " WHERE i.data LIKE $tag), "
        "(SELECT count(*) FROM deadletters WHERE flow = 'inference' "
        " AND epoch(failed_at) >= $since AND reason LIKE 'not JSON%')",
        {"tag": f"{tag}%", "since": since},
    )
    return int(inferences), int(feedback), int(dead)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--every", type=float, default=60.0)
    parser.add_argument(
        "--horizon",
        type=float,
        default=300.0,
        help="seconds of state the flows keep: monitor window, feedback TTL (default 1 h each)",
    )
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is missing: make install (apt-get install hey)")
    home = Path(tempfile.mkdtemp(prefix="driftline-soak-"))
    horizon = f"{args.horizon:g}"
    stack = Stack(
        home,
        {
            "DRIFTLINE_MONITOR_WINDOW_SECONDS": horizon,
            "DRIFTLINE_FEEDBACK_TTL_SECONDS": horizon,
            "DRIFTLINE_RETRAIN_METRICS": "",
        },
    )
    print(
        f"driftline soak: {args.rate:g} requests/s for {args.minutes:g} min, monitor window and "
        f"feedback TTL {horizon} s, {home}",
        flush=True,
    )
    seconds = args.minutes * 60
    cache = settings.load().gateway.result_cache_size
    stack.start()
    try:
        run(stack, seconds, args.rate, args.every, warm_up(seconds, args.rate, args.horizon, cache))
    finally:
        stack.stop()


def warm_up(seconds: float, rate: float, horizon: float, cache_size: int) -> float:
    """Seconds before RSS must stay flat: the state's horizon and the time the gateway's result
    cache takes to fill have passed, and at least `WARM_UP` of the run.

    >>> warm_up(1800, 200, 300, 100_000), warm_up(480, 200, 300, 100_000)
    (720.0, 500.0)
    """
    return max(WARM_UP * seconds, horizon, cache_size / rate)


def run(stack: Stack, seconds: float, rate: float, every: float, warm: float) -> None:
    tag, since = uuid.uuid4().hex, time.time()
    client = Client(stack.url, stack.env["DRIFTLINE_BROKERS"], tag, rate * 0.1)
    body = f'{{"data": "{tag} soak"}}'
    loads: list = []
    hey_thread = threading.Thread(
        target=lambda: loads.append(hey(f"{stack.url}/inference", seconds, 50, body, rate * 0.9))
    )
    client_thread = threading.Thread(target=client.run)
    hey_thread.start()
    client_thread.start()
    processes = stack.processes()
    samples: list[dict[str, float]] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds - 1:
        cpu = cpu_per_process(processes, min(every, seconds - (time.monotonic() - started)))
        rss = rss_per_process(processes)
        if time.monotonic() - started >= warm:
            samples.append(rss)
        print(
            f"t={time.monotonic() - started:5.0f}s  CPU {sum(cpu.values()) * 100:5.1f}%  "
            f"RSS {sum(rss.values()):7,.0f} MiB  "
            + ", ".join(f"{k} {rss[k]:.0f}/{cpu.get(k, 0) * 100:.0f}%" for k in sorted(rss)),
            flush=True,
        )
    hey_thread.join()
    client.stop.set()
    client_thread.join()
    load = loads[0]
    print(
        f"hey: {load.rps:,.0f} req/s, p50 {load.p50_ms:.0f} ms, p99 {load.p99_ms:.0f} ms, "
        f"statuses {load.statuses}"
    )
    accepted = load.statuses.get("200", 0) + load.statuses.get("504", 0) + client.accepted
    print(
        f"accepted inferences {accepted:,}, feedback {client.feedback:,}, invalid bodies "
        f"answered 4xx {client.invalid:,}, unreadable messages sent {client.unreadable:,}"
    )

    deadline = time.monotonic() + 300
    while True:
        stored = lake_counts(stack, tag, since)
        done = stored[0] >= accepted and stored[1] >= client.feedback
        if (done and stored[2] >= client.unreadable) or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(
        f"lake: inferences {stored[0]:,} of {accepted:,}, feedback {stored[1]:,} of "
        f"{client.feedback:,}, dead letters {stored[2]:,} of {client.unreadable:,}"
    )

    if len(samples) < 2:
        print(f"RSS not judged: the run ends within its warm-up ({warm:.0f} s), see --help")
        return
    print(f"RSS after the warm-up ({warm:.0f} s), max / min per process:")
    flat = True
    for name in sorted(samples[0]):
        values = [s[name] for s in samples if name in s]
        ratio = max(values) / min(values) if min(values) else float("inf")
        flat &= ratio <= 1.10
        print(f"  {name:<14} {min(values):7.0f} .. {max(values):7.0f} MiB  {ratio:5.2f}x")
    print(f"every process flat within 10%: {flat}")


if __name__ == "__main__":
    main()
