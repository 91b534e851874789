"""What the monitor's recovery snapshots cost once its window holds an hour of results.

    .venv/bin/python -m bench.monitor_snapshot [--rate 200] [--hours 1]

Bytewax snapshots, each epoch (1 s), the state of every key that changed in it; the monitor has
one key per model version, whose window (`DRIFTLINE_MONITOR_WINDOW_SECONDS`, 1 h) holds every
result of the last hour with its feature row. This fills one window with `rate` x `hours` x
3600 results, then prints what one epoch at that rate costs: the window's state pickled whole
(as the flow snapshotted it until the journal), against the journal's (`flows.journal`: the
epoch's results appended to a file and fsynced, and the state without events pickled), with
the journal's rewrite amortised (about one per window length of traffic); and the cost of a
restore from each.
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from tqdm import tqdm

from driftline.monitoring.reference import Reference
from driftline.monitoring.window import Event, ModelWindow
from driftline.settings import AlertSettings, MonitorSettings
from driftline.topics import ModelRef
from flows.journal import Journal

ROW_BYTES = 160
"""An encoded TF-IDF row of a 20-word text (`driftline.monitoring.rows`)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="results a second")
    parser.add_argument("--hours", type=float, default=1.0, help="window length")
    args = parser.parse_args()
    length = args.hours * 3600
    config = MonitorSettings(window_seconds=length, slide_seconds=length, lateness_seconds=length)
    reference = Reference(np.linspace(0.05, 0.95, 50), np.arange(50) % 2, np.eye(50, 3))
    window = ModelWindow(
        ModelRef(name="bench", version="1"), reference, config, AlertSettings(), 0.5
    )
    rng = np.random.default_rng(0)
    count, epoch = int(args.rate * length), int(args.rate)

    def results(first: int, n: int) -> None:
        for i in tqdm(range(first, first + n), desc="results", unit_scale=True, disable=n < 1e4):
            p = float(rng.uniform())
            key = str(uuid.UUID(int=int(rng.integers(2**63)) << 64 | i))
            window.add_result(Event(key, i / args.rate, p, p, int(p >= 0.5), rng.bytes(ROW_BYTES)))

    results(0, count)
    folder = Path(tempfile.mkdtemp(prefix="driftline-monitor-snapshot-"))
    journal = Journal(folder, "bench/1")
    journal.save(window.changed_events(), count, window.live_events)  # the first: everything
    results(count, epoch)

    began = time.perf_counter()
    whole = pickle.dumps(window.to_state())
    whole_ms = (time.perf_counter() - began) * 1e3
    results(count + epoch, epoch)
    before = journal.mark[1]
    began = time.perf_counter()
    mark = journal.save(window.changed_events(), count, window.live_events)
    small = pickle.dumps(window.to_state(events=False) | {"journal": mark})
    journaled_ms = (time.perf_counter() - began) * 1e3
    journaled = mark[1] - before + len(small)
    began = time.perf_counter()
    journal.rewrite(window.live_events())
    rewrite_ms = (time.perf_counter() - began) * 1e3
    amortised = rewrite_ms / length

    def restore(state: bytes, events: bool) -> float:
        began = time.perf_counter()
        loaded = pickle.loads(state)
        kept = Journal(folder, "bench/1").resume(loaded["journal"]) if events else ()
        ModelWindow.from_state(loaded, reference, config, AlertSettings(), 0.5, events=kept)
        return (time.perf_counter() - began) * 1e3

    snapshot = pickle.dumps(window.to_state(events=False) | {"journal": journal.mark})
    restore_whole, restore_journal = restore(whole, False), restore(snapshot, True)
    print(f"{len(window.window):,} results in one window, {args.rate:g} results a second")
    print(f"  one epoch, the window pickled whole:  {whole_ms:8.1f} ms, {len(whole):>12,} bytes")
    print(
        f"  one epoch, journaled:                 {journaled_ms:8.1f} ms, {journaled:>12,} bytes"
        f" (+ a rewrite of {rewrite_ms:,.0f} ms per {length:,.0f} s: {amortised:.2f} ms/s)"
    )
    print(
        f"  ratio: {whole_ms / (journaled_ms + amortised):,.0f}x less time, "
        f"{len(whole) / journaled:,.0f}x fewer bytes"
    )
    print(f"  restore: whole {restore_whole:,.0f} ms, from the journal {restore_journal:,.0f} ms")


if __name__ == "__main__":
    main()
