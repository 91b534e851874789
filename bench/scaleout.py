"""Scale-out on one machine: throughput and latency with 1 or 2 processes per flow and gateway.

    .venv/bin/python -m bench.scaleout [--profile cluster] [--seconds 15]

For each combination of Bytewax processes per flow (1, 2) and gateway worker processes (1, 2),
starts `driftline up` (`bench.harness.Stack`), waits until it is ready, and drives
`POST /inference` with Debian's `hey`: closed loop with 32 clients, then open loop at 50
requests/s. Prints one table. Runs share one folder, so the models are trained once, and each
run's flows resume from the previous run's recovery stores (Bytewax rescales them to the new
process count) instead of replaying the log. On 2 cores the stack competes with itself and with
`hey`, so expect more processes to help little or hurt: the point of the cluster profile is
the topology, the numbers say its cost here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from bench.harness import Stack, free_port, hey

BODY = json.dumps({"data": "what a lovely day for a walk in the park"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=["embedded", "cluster"], default="cluster")
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    if shutil.which("hey") is None:
        sys.exit("hey is missing: make install (apt-get install hey)")
    home = Path(tempfile.mkdtemp(prefix="driftline-scaleout-"))
    servers = {
        "DRIFTLINE_PROFILE": args.profile,
        "DRIFTLINE_OBJECTSTORE_PORT": str(free_port()),
        "DRIFTLINE_POSTGRES_PORT": str(free_port()),
        "DRIFTLINE_MLFLOW_PORT": str(free_port()),
    }
    print(f"profile {args.profile}, {args.seconds:g} s per measurement, home {home}")
    print("| flow processes | gateway workers | closed loop, 32 clients | p99 |", end=" ")
    print("50/s offered: p50 | p99 |")
    print("|---|---|---|---|---|---|")
    for processes, workers in ((1, 1), (2, 1), (1, 2), (2, 2)):
        sizes = {
            "DRIFTLINE_FLOW_PROCESSES": str(processes),
            "DRIFTLINE_GATEWAY_WORKERS": str(workers),
        }
        stack = Stack(home, servers | sizes)
        stack.start()
        try:
            hey(f"{stack.url}/inference", 5, 8, BODY)  # warm up
            closed = hey(f"{stack.url}/inference", args.seconds, 32, BODY)
            opened = hey(f"{stack.url}/inference", args.seconds, 10, BODY, rate=50)
        finally:
            stack.stop()
        failed = closed.failed + opened.failed
        print(
            f"| {processes} | {workers} | {closed.rps:.0f} req/s | {closed.p99_ms:.0f} ms "
            f"| {opened.p50_ms:.0f} ms | {opened.p99_ms:.0f} ms"
            + (f" ({failed} not 200)" if failed else "")
            + " |",
            flush=True,
        )


if __name__ == "__main__":
    main()
