"""The broker's log store (`servers/logstore/`, Go) per request: what each of tansu's requests
costs it, against the cheapest request it answers (a conditional GET answered 304) measured in
the same run.

A fetch of a consumer costs tansu two or three conditional GETs (the watermark and the cluster's
metadata, answered 304 while they have not changed), a listing of the partition's whole
`records/` prefix when there is something new, and a GET per batch it reads; a produce is a PUT
of the batch and a conditional PUT of the watermark. The listing is as long as what the
slowest consumer group has not committed (about 3 s of batches under load) plus
`DRIFTLINE_BROKER_KEEP_READ_BATCHES`.

    .venv/bin/python -m bench.logstore [--seconds 8] [--clients 8]

Load from Debian's `hey`; the server's CPU is read from /proc (user + system) over each
measurement, so each figure is the store's own cost, not the client's.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import httpx

from bench.harness import Load, cpu_seconds, hey
from servers.logstore import BUCKET, recipe
from servers.recipe import free_port, wait

RECORDS = "clusters/c/topics/t/partitions/0000000000/records/"
BATCH = b"x" * 300
"""About one single-message batch of an inference request."""


def measure(pid: int, seconds: float, run: Callable[[], Load]) -> tuple[Load, float]:
    """The load `run` returns, and the server's CPU microseconds per request during it."""
    before = cpu_seconds(pid)
    load = run()
    requests = load.rps * seconds
    return load, 1e6 * (cpu_seconds(pid) - before) / requests if requests else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is missing: make install (apt-get install hey)")
    store = Path(tempfile.mkdtemp(prefix="driftline-logstore-"))
    port = free_port()
    served = recipe(store, port, retention_seconds=3600, max_batches=100_000, keep_read=100_000)
    process = subprocess.Popen(served.argv, stderr=subprocess.DEVNULL)
    try:
        wait(served.ready, "the log store")
        run(process.pid, f"http://127.0.0.1:{port}/{BUCKET}", args.seconds, args.clients)
    finally:
        process.kill()
        process.wait(10)
        shutil.rmtree(store)


def run(pid: int, base: str, seconds: float, clients: int) -> None:
    with httpx.Client() as http:
        for offset in range(1000):
            key = f"{base}/{RECORDS}{offset:020d}.batch"
            http.put(key, content=BATCH).raise_for_status()
        etag = http.put(f"{base}/clusters/c/watermark.json", content=b"{}").headers["ETag"]
    unchanged = {"If-None-Match": etag}
    rows: list[tuple[str, Callable[[], Load]]] = [
        (
            "GET, unchanged (304): the floor",
            lambda: hey(f"{base}/clusters/c/watermark.json", seconds, clients, headers=unchanged),
        ),
        (
            "GET a 300-byte batch",
            lambda: hey(f"{base}/{RECORDS}{500:020d}.batch", seconds, clients),
        ),
        (
            "PUT a 300-byte batch",
            lambda: hey(
                f"{base}/{RECORDS}put.batch", seconds, clients, BATCH.decode(), method="PUT"
            ),
        ),
    ]
    for size in (100, 1000):
        listing = f"{base}?list-type=2&prefix={RECORDS}&max-keys={size}"
        rows.append((f"LIST {size:,} batches", partial(hey, listing, seconds, clients)))
    print(f"driftline log store, {clients} clients, {seconds:g} s a row (hey)")
    floor = None
    for label, load in rows:
        result, cpu_us = measure(pid, seconds, load)
        floor = floor or cpu_us
        print(
            f"  {label:32s} {result.rps:8,.0f} req/s  p99 {result.p99_ms:5.1f} ms  "
            f"CPU {cpu_us:6.1f} us/request  ({cpu_us / floor:4.1f}x the floor)"
        )


if __name__ == "__main__":
    main()
