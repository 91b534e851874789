"""Scale-out on one machine: throughput and latency with 1 or 2 processes per flow and gateway.

    .venv/bin/python bench/scaleout.py [--profile cluster] [--seconds 15]

For each combination of Bytewax processes per flow (1, 2) and gateway worker processes (1, 2),
starts `driftline up` in a temporary folder on free ports, waits until it is ready, and drives
`POST /inference` with Debian's `hey` (a compiled client, so the client does not eat the
measurement): closed loop with 32 clients, then open loop at 50 requests/s. Prints one table.
Runs share one folder, so the models are trained once, and each run's flows resume from the
previous run's recovery stores (Bytewax rescales them to the new process count) instead of
replaying the log. On 2 cores the stack competes with itself and with `hey`, so expect more
processes to help little or hurt: the point of the cluster profile is the topology, the numbers
say its cost here.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BODY = '{"data": "what a lovely day for a walk in the park"}'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s")


def hey(url: str, seconds: float, clients: int, rate_per_client: float | None = None) -> dict:
    argv = ["hey", "-z", f"{seconds:g}s", "-c", str(clients), "-m", "POST"]
    argv += ["-T", "application/json", "-d", BODY]
    if rate_per_client:
        argv += ["-q", f"{rate_per_client:g}"]
    out = subprocess.run([*argv, f"{url}/inference"], capture_output=True, text=True).stdout

    def number(pattern: str) -> float:
        found = re.search(pattern, out)
        return float(found.group(1)) if found else float("nan")

    codes = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    return {
        "rps": number(r"Requests/sec:\s+([\d.]+)"),
        "p50": number(r"50% in ([\d.]+) secs") * 1000,
        "p99": number(r"99% in ([\d.]+) secs") * 1000,
        "non_200": sum(int(n) for code, n in codes.items() if code != "200"),
    }


def run(home: Path, profile: str, processes: int, workers: int, seconds: float) -> dict:
    env = os.environ | {
        "DRIFTLINE_HOME": str(home),
        "DRIFTLINE_PROFILE": profile,
        "DRIFTLINE_BROKERS": f"127.0.0.1:{free_port()}",
        "DRIFTLINE_GATEWAY_PORT": str(free_port()),
        "DRIFTLINE_LOGSTORE_PORT": str(free_port()),
        "DRIFTLINE_OBJECTSTORE_PORT": str(ports["objectstore"]),
        "DRIFTLINE_POSTGRES_PORT": str(ports["postgres"]),
        "DRIFTLINE_MLFLOW_PORT": str(ports["mlflow"]),
        "DRIFTLINE_FLOW_PORT_BASE": str(free_port()),
        "DRIFTLINE_FLOW_PROCESSES": str(processes),
        "DRIFTLINE_GATEWAY_WORKERS": str(workers),
        "DRIFTLINE_MODEL_BOOTSTRAP_SAMPLE": "3000",
    }
    log = (home / "up.log").open("ab")
    up = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "up"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{env['DRIFTLINE_GATEWAY_PORT']}"
    try:
        wait_ready(url)
        hey(url, 5, 8)  # warm up: models loaded, connections open
        closed = hey(url, seconds, 32)
        opened = hey(url, seconds, 10, rate_per_client=5)  # 50 requests/s offered
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
    return {"closed": closed, "open": opened}


ports: dict[str, int] = {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["embedded", "cluster"], default="cluster")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is missing: make install (apt-get install hey)")
    ports.update(objectstore=free_port(), postgres=free_port(), mlflow=free_port())
    home = Path(tempfile.mkdtemp(prefix="driftline-scaleout-"))
    print(f"profile {args.profile}, {args.seconds:g} s per measurement, home {home}")
    print("| flow processes | gateway workers | closed loop, 32 clients | p99 |", end=" ")
    print("50/s offered: p50 | p99 |")
    print("|---|---|---|---|---|---|")
    for processes, workers in ((1, 1), (2, 1), (1, 2), (2, 2)):
        r = run(home, args.profile, processes, workers, args.seconds)
        c, o = r["closed"], r["open"]
        errors = f" ({c['non_200'] + o['non_200']} not 200)" if c["non_200"] + o["non_200"] else ""
        print(
            f"| {processes} | {workers} | {c['rps']:.0f} req/s | {c['p99']:.0f} ms "
            f"| {o['p50']:.0f} ms | {o['p99']:.0f} ms{errors} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
