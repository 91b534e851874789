"""Two settings of the whole stack side by side, at a fixed offered rate, in alternating runs.

    .venv/bin/python -m bench.compare DRIFTLINE_GATEWAY_LINGER_MS=2 DRIFTLINE_GATEWAY_LINGER_MS=5
        [--rounds 2] [--rate 200] [--seconds 15] [--runs 3]

Each argument is one arm: `NAME=VALUE` settings joined by commas (`-` for the defaults). Every
round starts a fresh stack per arm, in turn, and measures `--runs` Poisson loads at `--rate`
requests/s (`wrk`, `bench/poisson.lua`), each with: p50 and p99, the CPU time the hypervisor
took from the machine meanwhile (steal), what the broker asked of its log store (requests and
listings a second, objects a listing), and CPU per process; then 128 clients closed loop. Runs
of the same code differ a lot on this shared 2-core machine (their p99 goes with the steal, in
part), so one arm's figures mean something only beside the other's from the same rounds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from bench.e2e import TEXT, broker_cost, steal
from bench.harness import Stack, closed_loop, cpu_meanwhile, poisson, stolen_meanwhile, warm_up

SHOWN_PROCESSES = 4
"""Processes named in a row, the busiest first."""


def arm(spec: str) -> dict[str, str]:
    """`NAME=VALUE,NAME=VALUE` as environment variables (`-`: none).

    >>> arm("DRIFTLINE_GATEWAY_LINGER_MS=5,DRIFTLINE_FETCH_WAIT_MS=20")
    {'DRIFTLINE_GATEWAY_LINGER_MS': '5', 'DRIFTLINE_FETCH_WAIT_MS': '20'}
    >>> arm("-")
    {}
    """
    if spec == "-":
        return {}
    pairs = [item.split("=", 1) for item in spec.split(",")]
    if any(len(pair) != 2 or not pair[0].startswith("DRIFTLINE_") for pair in pairs):
        raise argparse.ArgumentTypeError(f"{spec!r}: expected DRIFTLINE_NAME=VALUE[,...] or -")
    return dict(pairs)


def measure(label: str, env: dict[str, str], rate: float, seconds: float, runs: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="driftline-compare-"))
    stack = Stack(home, {"DRIFTLINE_RETRAIN_METRICS": "", **env})
    stack.start()
    try:
        url, body = stack.url, json.dumps({"data": TEXT})
        warm_up(stack, body)
        processes = stack.processes()
        for run in range(runs):
            measured = cpu_meanwhile(processes, seconds * 0.8)
            before, stolen = stack.logstore_counts(), stolen_meanwhile()
            load = poisson(f"{url}/inference", rate, seconds, body, seed=run)
            cost = broker_cost(before, stack.logstore_counts(), seconds).strip()
            cpu = measured()
            busiest = sorted(cpu.items(), key=lambda kv: -kv[1])[:SHOWN_PROCESSES]
            top = ", ".join(f"{name} {100 * share:.0f}" for name, share in busiest)
            print(
                f"{label} {rate:g}/s #{run}: p50 {load.p50_ms:5.1f} p99 {load.p99_ms:6.1f} ms, "
                f"{steal(stolen()).strip()} | "
                f"{cost} | CPU {100 * sum(cpu.values()):.0f}%: {top}",
                flush=True,
            )
        load = closed_loop(f"{url}/inference", seconds, 128, body)
        print(f"{label} 128 clients: {load.rps:,.0f} req/s p50 {load.p50_ms:.0f} ms", flush=True)
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("arms", nargs=2, type=arm, metavar="ARM")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--runs", type=int, default=3, help="Poisson runs per stack")
    args = parser.parse_args()
    for name, env in zip("AB", args.arms, strict=True):
        print(f"{name}: {' '.join(f'{k}={v}' for k, v in env.items()) or 'defaults'}")
    for _ in range(args.rounds):
        for name, env in zip("AB", args.arms, strict=True):
            measure(name, env, args.rate, args.seconds, args.runs)


if __name__ == "__main__":
    main()
