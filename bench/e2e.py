"""The whole path, measured in one run: throughput, latency, CPU and memory of the stack.

    .venv/bin/python bench/e2e.py [--seconds 15] [--profile embedded]

Starts `driftline up` in a temporary folder on free ports (two TF-IDF models), then prints:
1. idle: CPU and RSS per process with no traffic, and the stack's PSS;
2. floors, measured in the same run: `GET /health` (the gateway's HTTP alone), closed loop; a
   bare Kafka produce -> consume round trip on the same broker; and the request path's two
   broker hops alone at 200/s (`bench.harness.kafka_relay_ms`), which the 200/s Poisson row's
   p99 is set against;
3. `POST /inference` closed loop with 8, 32, 64 and 128 clients, against the HTTP floor;
4. `POST /inference` at fixed offered rates (open loop): 100, 200, 500, 1,000, 2,000 /s from
   `hey`, and first 100 and 200 /s arriving as a Poisson process (`wrk`, `bench/poisson.lua`),
   before the rates the stack cannot keep up with leave it a backlog; with the Poisson rows,
   what the broker asked of its log store meanwhile (requests, listings and their length);
5. `POST /inferences` (100 texts a call), closed loop: texts/s, and how long the lake writer
   takes after the last answer to hold every text;
6. CPU and RSS per process (and PSS) under the batch load.
Load comes from Debian's `wrk` (closed loop, Poisson arrivals) and `hey` (fixed offered rates,
which `wrk` cannot pace). Figures are from a shared 2-core machine: compare within a run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.harness import (
    STEAL_WINDOW,
    Load,
    Stack,
    Stolen,
    closed_loop,
    cpu_meanwhile,
    cpu_per_process,
    hey,
    kafka_relay_ms,
    kafka_round_trip_ms,
    poisson,
    pss_total,
    rss_per_process,
    stolen_meanwhile,
    warm_up,
)
from driftline import settings

TEXT = "what a lovely day for a walk in the park"
RELAYED = 200
"""Requests/s of the bare two-hop floor, and of the Poisson row set against it: each request
crosses the broker twice (to the inference flow, back to the gateway)."""


def latencies(milliseconds: list[float], seconds: float) -> Load:
    """A `Load` of latencies measured outside a load generator (every one answered)."""
    p50, p99 = (statistics.quantiles(milliseconds, n=100)[i] for i in (49, 98))
    return Load(len(milliseconds) / seconds, p50, p99, {"200": len(milliseconds)})


def row(label: str, load: Load, floor: Load | None = None) -> str:
    ratio = f"  ({load.rps / floor.rps:.0%} of the floor)" if floor else ""
    failed = f"  [{load.failed} not 200: {load.statuses}]" if load.failed else ""
    return (
        f"  {label:<34} {load.rps:8,.0f} req/s  p50 {load.p50_ms:6.1f} ms  "
        f"p99 {load.p99_ms:7.1f} ms{ratio}{failed}"
    )


def steal(stolen: Stolen) -> str:
    """What the hypervisor took meanwhile, as a row's suffix.

    >>> steal(Stolen(percent=0.4, worst_ms=60.0))
    '  steal 0.4%, at most 60 ms in 0.1 s'
    """
    return f"  steal {stolen.percent:.1f}%, at most {stolen.worst_ms:.0f} ms in {STEAL_WINDOW:g} s"


def per_process(title: str, values: dict[str, float], unit: str, scale: float = 1.0) -> None:
    shown = {k: v * scale for k, v in sorted(values.items()) if v * scale >= 0.05}
    total = sum(v * scale for v in values.values())
    print(f"{title}: total {total:,.1f} {unit}")
    print("  " + ", ".join(f"{k} {v:,.1f}" for k, v in shown.items()))


def memory(title: str, processes: dict[str, int]) -> None:
    """RSS per process (what issue 10 counts), then the stack's PSS: its shared libraries once."""
    per_process(f"{title}, MiB", rss_per_process(processes), "MiB")
    print(f"  PSS (each shared page split among its processes): {pss_total(processes):,.1f} MiB")


def broker_cost(before: dict[str, float], after: dict[str, float], seconds: float) -> str:
    """What the broker asked of its log store meanwhile: tansu lists a partition on every fetch
    that finds something new, so the listings' length is its main cost per fetch.

    >>> broker_cost({"list": 0, "get": 0, "listed": 0}, {"list": 20, "get": 30, "listed": 800}, 10)
    '    log store: 5.0 requests/s, 2.0 listings/s of 40 objects'
    """
    change = {kind: after.get(kind, 0) - before.get(kind, 0) for kind in after}
    listed = change.pop("listed", 0)
    lists = change.get("list", 0)
    average = listed / lists if lists else 0
    return (
        f"    log store: {sum(change.values()) / seconds:,.1f} requests/s, "
        f"{lists / seconds:,.1f} listings/s of {average:,.0f} objects"
    )


def lake_count(stack: Stack, tag: str) -> int:
    sql = "SELECT count(*) FROM inferences WHERE data LIKE ?"
    return int(stack.lake_rows(sql, [f"{tag}%"])[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--profile", choices=["embedded", "cluster"], default="embedded")
    args = parser.parse_args()
    missing = [tool for tool in ("hey", "wrk") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"{' and '.join(missing)} missing: make install (apt-get install hey wrk)")
    home = Path(tempfile.mkdtemp(prefix="driftline-e2e-"))
    # Retraining off: the repeated texts drift, and a training mid-run would load the machine.
    stack = Stack(home, {"DRIFTLINE_PROFILE": args.profile, "DRIFTLINE_RETRAIN_METRICS": ""})
    print(f"driftline e2e: profile {args.profile}, {args.seconds:g} s per measurement, {home}")
    stack.start()
    try:
        run(stack, args.seconds)
    finally:
        stack.stop()


def run(stack: Stack, seconds: float) -> None:
    url, body = stack.url, json.dumps({"data": TEXT})
    warm_up(stack, body)
    processes = stack.processes()
    per_process("idle CPU, % of a core (20 s)", cpu_per_process(processes, 20), "%", 100)
    memory("idle RSS", processes)

    print("floors")
    floor = closed_loop(f"{url}/health", seconds, 32)
    print(row("GET /health, 32 clients", floor))
    fetch_wait = settings.load(stack.env).kafka.request_path_fetch_wait_ms
    brokers = stack.env["DRIFTLINE_BROKERS"]
    kafka = kafka_round_trip_ms(brokers, fetch_wait)
    print(f"  bare Kafka round trip, one at a time  p50 {statistics.median(kafka):6.1f} ms")
    stolen = stolen_meanwhile()
    relay = latencies(kafka_relay_ms(brokers, fetch_wait, RELAYED, seconds), seconds)
    print(row(f"bare Kafka, two hops, {RELAYED}/s Poisson", relay) + steal(stolen()))

    print("POST /inference, closed loop")
    for clients in (8, 32, 64, 128):
        load = closed_loop(f"{url}/inference", seconds, clients, body)
        print(row(f"{clients} clients", load, floor))
    print("POST /inference, Poisson arrivals (wrk, 2 connections per request/s)")
    for rate in (100, RELAYED):
        before, stolen = stack.logstore_counts(), stolen_meanwhile()
        load = poisson(f"{url}/inference", rate, seconds, body)
        beside = f"  (p99 {load.p99_ms / relay.p99_ms:.1f}x two hops)" if rate == RELAYED else ""
        print(row(f"{rate:,}/s offered", load) + steal(stolen()) + beside)
        print(broker_cost(before, stack.logstore_counts(), seconds))
    print("POST /inference, open loop (offered rate)")
    for rate in (100, 200, 500, 1000, 2000):
        # 5 requests/s per client: enough clients that slow answers do not lower the rate.
        load = hey(f"{url}/inference", seconds, rate // 5, body, rate=rate)
        print(row(f"{rate:,}/s offered", load))

    print("POST /inferences, 100 texts a call, closed loop with 8 clients")
    tag = uuid.uuid4().hex
    batch = json.dumps({"items": [{"data": f"{tag} {TEXT} {i}"} for i in range(100)]})
    cpu = cpu_meanwhile(processes, seconds * 0.8)
    load = closed_loop(f"{url}/inferences", seconds, 8, batch)
    answered = time.monotonic()
    texts = int(load.rps * seconds) * 100  # calls answered x texts a call (approximately)
    print(row("calls", load))
    print(f"  texts scored: {load.rps * 100:,.0f}/s")
    while lake_count(stack, tag) < texts * 0.99 and time.monotonic() - answered < 300:
        time.sleep(1)
    print(
        f"  lake: {lake_count(stack, tag):,} of ~{texts:,} texts stored "
        f"{time.monotonic() - answered:.1f} s after the last answer"
    )
    per_process("CPU under the batch load, % of a core", cpu(), "%", 100)
    memory("RSS under load", processes)


if __name__ == "__main__":
    main()
