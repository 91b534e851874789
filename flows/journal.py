"""An append-only journal beside a flow's recovery store, for state too big to snapshot whole.

Bytewax pickles a key's whole state into its recovery store at every epoch in which the key
saw a message. The monitor's window of one model holds every event of the last hour (~1M at
300 results/s): pickling and writing all of it each second costs more than the flow has. So
the window's events go into a journal instead, a batch of what changed per snapshot, and the
snapshot keeps only the journal's `Mark`, the length it had then.

The journal is written before Bytewax stores the snapshot that marks it, so a resumed
snapshot's mark always lies within what was written. On resume the file is cut back to the
mark: whatever was appended after it belongs to epochs that are replayed anyway. When the
journal holds much more than the live state, it is rewritten with only that, as the next
generation (a new file; the snapshot that marks it makes it current). A rewrite deletes the
generations before the one it replaces and runs at most every `REWRITE_EVERY` snapshots, so
every snapshot Bytewax may still resume from has its file.

A file is a sequence of records, one per `append`: a header (payload length, CRC-32) and a
pickled list. Files are fsynced before the snapshot is, like Bytewax's own store.

>>> import tempfile
>>> journal = Journal(Path(tempfile.mkdtemp()), "m/1")
>>> first = journal.append([("a", 1), ("b", 2)])
>>> later = journal.append([("a", 3)])
>>> Journal(journal.folder, "m/1").resume(later)
[('a', 1), ('b', 2), ('a', 3)]
>>> Journal(journal.folder, "m/1").resume(first)  # a crash before `later` was snapshotted
[('a', 1), ('b', 2)]
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

Mark = tuple[int, int]
"""(generation, length in bytes): what a snapshot stores of the journal."""

HEADER = struct.Struct("<II")
REWRITE_EVERY = 10
"""Fewest snapshots between two rewrites: a generation outlives any snapshot that names it."""
MIN_REWRITE = 10_000
"""Fewest items appended before a rewrite pays off."""


class Journal:
    """The journal of one Bytewax key in `folder` (a flow's recovery directory)."""

    def __init__(self, folder: Path, key: str) -> None:
        self.folder = folder
        readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", key)[:40]
        self._stem = f"{readable}-{hashlib.blake2b(key.encode(), digest_size=6).hexdigest()}"
        self._generation = 0
        self._length = 0
        self._appended = 0
        """Items in the current generation."""
        self._snapshots = 0
        """Snapshots since the current generation began."""

    @property
    def mark(self) -> Mark:
        """What has been written so far."""
        return self._generation, self._length

    def _path(self, generation: int) -> Path:
        return self.folder / f"{self._stem}.{generation}.journal"

    def _generations(self) -> list[tuple[int, Path]]:
        """(generation, file) of every file of this key's journal on disk."""
        return [(int(p.suffixes[-2][1:]), p) for p in self.folder.glob(f"{self._stem}.*.journal")]

    def resume(self, mark: Mark) -> list[Any]:
        """Every item appended up to `mark`, in order; later appends are dropped."""
        generation, length = mark
        path = self._path(generation)
        with path.open("r+b") as file:
            data = file.read(length)
            file.truncate(length)
        if len(data) < length:
            raise ValueError(f"{path} has {len(data)} bytes, and the snapshot marks {length}")
        items, at = [], 0
        while at < length:
            size, crc = HEADER.unpack_from(data, at)
            payload = data[at + HEADER.size : at + HEADER.size + size]
            if len(payload) != size or zlib.crc32(payload) != crc:
                raise ValueError(f"{path} is damaged at byte {at} (the snapshot marks {length})")
            items += pickle.loads(payload)
            at += HEADER.size + size
        for older, stale in self._generations():
            if older > generation:  # a rewrite no snapshot marks
                stale.unlink()
        self._generation, self._length, self._appended = generation, length, len(items)
        return items

    def save(self, changed: list[Any], live: int, everything: Callable[[], list[Any]]) -> Mark:
        """Append `changed`, or, when the journal has grown past twice the `live` items,
        rewrite it with `everything()` (a callable, so it is only built when needed). The
        first save of a journal not resumed writes `everything()`: the state may come from a
        snapshot that held it whole."""
        if self._length == 0:
            return self.append(everything())
        self._snapshots += 1
        grown = self._appended + len(changed) > max(MIN_REWRITE, 2 * live)
        if grown and self._snapshots >= REWRITE_EVERY:
            return self.rewrite(everything())
        return self.append(changed)

    def append(self, items: list[Any]) -> Mark:
        """Add `items` (nothing to add writes nothing); the mark that covers them."""
        if items or self._length == 0:
            payload = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
            record = HEADER.pack(len(payload), zlib.crc32(payload)) + payload
            fresh = self._length == 0
            with self._path(self._generation).open("ab") as file:
                file.seek(self._length)
                file.truncate()
                file.write(record)
                file.flush()
                os.fsync(file.fileno())
            if fresh:
                _sync_folder(self.folder)
            self._length += len(record)
            self._appended += len(items)
        return self.mark

    def rewrite(self, items: list[Any]) -> Mark:
        """Start the next generation with `items` only; generations before the previous one
        are deleted."""
        for older, old in self._generations():
            if older < self._generation:
                old.unlink()
        self._generation += 1
        self._length = self._appended = self._snapshots = 0
        self._path(self._generation).unlink(missing_ok=True)
        return self.append(items)


def _sync_folder(folder: Path) -> None:
    """Make a new file's name durable, not only its bytes."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
