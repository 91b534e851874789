"""Stable shards of inference ids, for state kept per id in a Bytewax step.

Bytewax snapshots each key that changed in an epoch, and at every activation of a stateful step
it scans the timers of all its keys (`sched_cache` in its `stateful_batch`) for a due one and
for the next wake-up. Keyed by inference id, a step that remembers an hour of ids at 200/s holds
720,000 keys, and one activation per expiring id then scans them all, twice. Keyed by
`shard_of` the id, the same ids live in `SHARDS` keys: a snapshot pickles the few shards that
changed, and the scans stay short. Used by the A/B flow's ledgers and the feedback join.
"""

from __future__ import annotations

import zlib

SHARDS = 16_384
"""Fixed: a changed count would send known ids to other shards. More shards cost Bytewax ~1 KB
each; fewer make each snapshot pickle more ids (at 1,000/s for an hour, 3.6M ids: 16,384 shards
re-pickle ~6% of them each second, 4,096 shards ~22%)."""


def shard_of(inference_id: str) -> int:
    """The shard of an inference id, the same in every process.

    >>> shard_of("5b0c9e3e-6f44-4b53-9d55-2f6f0b0f6d2a")
    1142
    """
    return zlib.crc32(inference_id.encode()) % SHARDS
