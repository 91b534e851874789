"""What the A/B flow's recovery snapshots cost once it remembers an hour of inference ids.

    .venv/bin/python -m bench.ab_snapshot [--rate 200] [--hours 1]

Bytewax snapshots, each epoch (1 s), the state of every key that changed in it. The A/B flow
remembers each inference id for the feedback time-to-live (`DRIFTLINE_FEEDBACK_TTL_SECONDS`, 1 h);
its ids live in `driftline.ab.ledger.SHARDS` ledgers per experiment. This fills the ledgers with
`rate` x `hours` x 3600 results, as the flow would, and prints the pickling cost of one epoch's
snapshot at that rate (the ledgers `rate` random ids touch) against that of one state holding
every id (as the flow kept them until the ledgers, per experiment).
"""

from __future__ import annotations

import argparse
import pickle
import random
import time
import uuid
from datetime import timedelta

from tqdm import tqdm

from driftline.ab.ledger import SHARDS, IdLedger, shard_of
from driftline.clock import utc_now
from driftline.topics import InferenceResult


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="results a second")
    parser.add_argument("--hours", type=float, default=1.0, help="time-to-live")
    args = parser.parse_args()
    count, rng, start = int(args.rate * args.hours * 3600), random.Random(0), utc_now()
    ledgers: dict[int, IdLedger] = {}
    for i in tqdm(range(count), desc="results", unit_scale=True):
        result = InferenceResult.model_construct(
            inference_id=uuid.UUID(int=rng.getrandbits(128)),
            created_at=start + timedelta(seconds=i / args.rate),
            data="x",
            experiment="e",
            arm="AB"[i % 2],
            prediction=0.7,
            label=1,
            model=None,
            shadow_of=None,
        )
        shard = shard_of(str(result.inference_id))
        ledgers.setdefault(shard, IdLedger(args.hours * 3600)).on_result(result)
    touched = {shard_of(str(uuid.UUID(int=rng.getrandbits(128)))) for _ in range(int(args.rate))}
    began = time.perf_counter()
    epoch = sum(len(pickle.dumps(ledgers[k].to_state())) for k in touched if k in ledgers)
    epoch_ms = (time.perf_counter() - began) * 1e3
    began = time.perf_counter()
    every_id = {k: tuple(v) for ledger in ledgers.values() for k, v in ledger.seen.items()}
    whole = len(pickle.dumps(every_id))
    whole_ms = (time.perf_counter() - began) * 1e3
    print(f"{count:,} ids remembered, {SHARDS:,} ledgers, {args.rate:g} results a second")
    print(f"  one epoch's snapshot: {len(touched)} ledgers, {epoch_ms:7.1f} ms, {epoch:>12,} bytes")
    print(f"  every id in one state:          {whole_ms:7.1f} ms, {whole:>12,} bytes")
    print(f"  ratio: {whole_ms / epoch_ms:,.0f}x less time, {whole / epoch:,.0f}x fewer bytes")


if __name__ == "__main__":
    main()
