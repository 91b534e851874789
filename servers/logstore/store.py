"""The log store's objects on local disk, with a sorted in-memory index and retention.

Each object is one file whose first line is a JSON header (ETag, LastModified) and whose rest
is the body. A write goes to a temporary file in the same folder and is renamed over the old
one, so a `kill -9` at any moment leaves either the old or the new object, header and body
together. The index (sorted keys per bucket) is rebuilt at start by walking the folders, which
keeps listings to a bisect and a slice instead of a directory walk per request.

Keys map to paths segment by segment: folder names are percent-encoded with `.` encoded too,
and file names are the encoded last segment plus `.s3o`, so a folder never has a dot and a
file always has one. `a/b` and `a/b/c` can both exist, and `.`, `..` or empty segments are safe.

>>> store_path("clusters/c/records/00000000000000000001.batch")
'clusters/c/records/00000000000000000001.batch.s3o'
>>> store_path("a.b/../c/")
'a%2Eb/%2E%2E/c/.s3o'
"""

from __future__ import annotations

import bisect
import errno
import hashlib
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote

log = logging.getLogger(__name__)

MAX_KEYS = 1000
RETIRED_SECONDS = 60.0
"""How long an expired batch stays readable after it left the listings (Kafka's
`file.delete.delay.ms`): tansu lists a partition's batches, then reads them, and a batch that
retention deleted in between failed the whole fetch (`UnknownServerError`)."""
SUFFIX = ".s3o"
TEMP_SUFFIX = ".tmp"
BATCH = re.compile(r"(?P<partition>.*/partitions/[^/]+/records/)[^/]+\.batch")
"""tansu's batch objects: `clusters/<c>/topics/<t>/partitions/<p10>/records/<offset20>.batch`."""
COMMIT = re.compile(
    r"(?P<cluster>clusters/[^/]+/)groups/consumers/[^/]+/offsets/(?P<topic>[^/]+)"
    r"/partitions/(?P<partition>[0-9]+)\.json"
)
"""tansu's committed offsets: `clusters/<c>/groups/consumers/<g>/offsets/<t>/partitions/<p10>.json`,
a JSON object whose `offset` is the group's next offset to read."""


def records_of(commit: re.Match[str]) -> str:
    """The `records/` prefix of the partition a committed offset is for.

    >>> key = "clusters/c/groups/consumers/g/offsets/t/partitions/0000000003.json"
    >>> records_of(COMMIT.fullmatch(key))
    'clusters/c/topics/t/partitions/0000000003/records/'
    """
    return f"{commit['cluster']}topics/{commit['topic']}/partitions/{commit['partition']}/records/"


class StoreError(Exception):
    """An S3 error: `code` and `status` are what S3 answers for it."""

    code = "InternalError"
    status = 500
    description = "We encountered an internal error."

    def __init__(self, subject: str) -> None:
        super().__init__(f"{self.description} ({subject})")


class NoSuchBucket(StoreError):
    code, status, description = "NoSuchBucket", 404, "The specified bucket does not exist."


class NoSuchKey(StoreError):
    code, status, description = "NoSuchKey", 404, "The specified key does not exist."


class PreconditionFailed(StoreError):
    code, status = "PreconditionFailed", 412
    description = "At least one of the preconditions you specified did not hold."


class KeyTooLong(StoreError):
    code, status, description = "KeyTooLongError", 400, "Your key is too long."


@dataclass(frozen=True)
class Meta:
    size: int
    etag: str
    """Quoted, as in the `ETag` header."""
    modified_ms: int
    """Milliseconds since the epoch, strictly increasing with every write to the store."""


@dataclass
class Listing:
    contents: list[tuple[str, Meta]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    next_start: str | None = None
    """Where the next page starts (inclusive), or None when this page is the last."""


def store_path(key: str) -> str:
    """The file of `key`, relative to its bucket's folder (see the module docstring)."""
    *folders, name = key.split("/")
    dirs = [quote(part, safe="").replace(".", "%2E") or "%" for part in folders]
    return "/".join([*dirs, quote(name, safe="") + SUFFIX])


def key_of(path: str) -> str:
    """The inverse of `store_path`.

    >>> key_of(store_path("a.b/../%/c/")) == "a.b/../%/c/"
    True
    """
    *dirs, name = path.split("/")
    folders = ["" if part == "%" else unquote(part) for part in dirs]
    return "/".join([*folders, unquote(name.removesuffix(SUFFIX))])


def etag_matches(condition: str, etag: str) -> bool:
    """Whether an `If-Match`/`If-None-Match` value (`*` or a list of ETags) names `etag`.

    >>> etag_matches('"a", W/"b"', '"b"'), etag_matches("*", '"c"'), etag_matches('"a"', '"c"')
    (True, True, False)
    """
    tags = [tag.strip().removeprefix("W/") for tag in condition.split(",")]
    return "*" in tags or etag in tags


def after(prefix: str) -> str:
    """The first string after all those that start with `prefix` (not empty).

    >>> after("records/")
    'records0'
    """
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class LogStore:
    """Buckets of objects under `root`, safe to use from several threads."""

    def __init__(
        self,
        root: Path,
        buckets: Iterable[str],
        *,
        fsync: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.fsync = fsync
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, list[str]] = {}
        self._meta: dict[str, dict[str, Meta]] = {}
        self._partitions: dict[str, set[str]] = {}
        self._commits: dict[str, set[str]] = {}
        self._committed: dict[str, tuple[int, int]] = {}
        """Committed offset objects read so far: key -> (its modified_ms, its offset)."""
        self._retired: dict[tuple[str, str], tuple[float, Meta]] = {}
        """Expired batches still readable: (bucket, key) -> (when they go, their metadata)."""
        self._clock_file = root / ".clock"
        root.mkdir(parents=True, exist_ok=True)
        for stale in root.glob(f"*{TEMP_SUFFIX}"):
            stale.unlink()
        self._last_ms = int(self._clock_file.read_text()) if self._clock_file.exists() else 0
        for bucket in buckets:
            self._load(bucket)

    def _load(self, bucket: str) -> None:
        folder = self.root / bucket
        folder.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Meta] = {}
        for dirpath, _, files in os.walk(folder):
            for name in files:
                path = Path(dirpath, name)
                if not name.endswith(SUFFIX):
                    if name.endswith(TEMP_SUFFIX):  # a write cut short by a kill
                        path.unlink()
                    continue
                with path.open("rb") as file:
                    header = file.readline()
                info = json.loads(header)
                size = path.stat().st_size - len(header)
                key = key_of(path.relative_to(folder).as_posix())
                meta[key] = Meta(size, info["etag"], info["modified_ms"])
                self._last_ms = max(self._last_ms, info["modified_ms"])
        self._meta[bucket] = meta
        self._keys[bucket] = sorted(meta)
        self._partitions[bucket] = {m["partition"] for k in meta if (m := BATCH.fullmatch(k))}
        self._commits[bucket] = {key for key in meta if COMMIT.fullmatch(key)}
        log.info("bucket %s: %d objects", bucket, len(meta))

    def _bucket(self, bucket: str) -> dict[str, Meta]:
        try:
            return self._meta[bucket]
        except KeyError:
            raise NoSuchBucket(bucket) from None

    @property
    def last_write_ms(self) -> int:
        """The store's clock at its newest write: it moves whenever anything is written."""
        return self._last_ms

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes,
        *,
        if_match: str | None = None,
        if_none_match: str | None = None,
    ) -> Meta:
        """Store `body`; with a condition, check it and write as one step (412 otherwise)."""
        etag = f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
        with self._lock:
            objects = self._bucket(bucket)
            current = objects.get(key)
            if if_none_match is not None and current and etag_matches(if_none_match, current.etag):
                raise PreconditionFailed(key)
            if if_match is not None and not (current and etag_matches(if_match, current.etag)):
                raise PreconditionFailed(key)
            self._last_ms = max(int(self.clock() * 1000), self._last_ms + 1)
            meta = Meta(len(body), etag, self._last_ms)
            header = json.dumps({"etag": etag, "modified_ms": meta.modified_ms}).encode() + b"\n"
            try:
                self._write(self.root / bucket / store_path(key), header + body)
            except OSError as error:
                if error.errno == errno.ENAMETOOLONG:
                    raise KeyTooLong(key) from error
                raise
            self._retired.pop((bucket, key), None)
            if current is None:
                bisect.insort(self._keys[bucket], key)
                if match := BATCH.fullmatch(key):
                    self._partitions[bucket].add(match["partition"])
                elif COMMIT.fullmatch(key):
                    self._commits[bucket].add(key)
            objects[key] = meta
            return meta

    def _write(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.parent / f".{uuid.uuid4().hex}{TEMP_SUFFIX}"
        with temp.open("wb") as file:
            file.write(data)
            if self.fsync:
                os.fsync(file.fileno())
        os.replace(temp, path)

    def _object(self, bucket: str, key: str) -> Meta:
        found = self._bucket(bucket).get(key)
        if found is None and (retired := self._retired.get((bucket, key))) is not None:
            found = retired[1]
        if found is None:
            raise NoSuchKey(key)
        return found

    def head(self, bucket: str, key: str) -> Meta:
        with self._lock:
            return self._object(bucket, key)

    def get(self, bucket: str, key: str) -> tuple[Meta, bytes]:
        """The object's metadata and body."""
        with self._lock:
            return self._object(bucket, key), self._body(bucket, key)

    def _body(self, bucket: str, key: str) -> bytes:
        """An object's body: its file without the header line."""
        data = (self.root / bucket / store_path(key)).read_bytes()
        return data[data.index(b"\n") + 1 :]

    def list_objects(
        self,
        bucket: str,
        prefix: str = "",
        *,
        delimiter: str = "",
        start: str = "",
        max_keys: int = MAX_KEYS,
    ) -> Listing:
        """One ListObjectsV2 page: keys from `start` (inclusive) in order, folded at `delimiter`."""
        with self._lock:
            objects = self._bucket(bucket)
            keys = self._keys[bucket]
            page = Listing()
            at = bisect.bisect_left(keys, max(prefix, start))
            while at < len(keys) and keys[at].startswith(prefix):
                key = keys[at]
                if len(page.contents) + len(page.prefixes) == max_keys:
                    page.next_start = key
                    break
                cut = key.find(delimiter, len(prefix)) if delimiter else -1
                if cut < 0:
                    page.contents.append((key, objects[key]))
                    at += 1
                    continue
                folded = key[: cut + len(delimiter)]
                page.prefixes.append(folded)
                at = bisect.bisect_left(keys, after(folded), at)
            return page

    def delete_many(self, bucket: str, keys: Iterable[str]) -> None:
        """Delete the keys that exist; like S3, missing keys are not an error."""
        with self._lock:
            self._delete(bucket, keys)

    def _delete(self, bucket: str, keys: Iterable[str]) -> None:
        for key in self._unlist(bucket, keys):
            self._unlink(bucket, key)

    def _unlist(self, bucket: str, keys: Iterable[str]) -> list[str]:
        """Take `keys` out of the index; returns those that were in it."""
        objects = self._bucket(bucket)
        sorted_keys = self._keys[bucket]
        removed = []
        for key in keys:
            if objects.pop(key, None) is None:
                continue
            del sorted_keys[bisect.bisect_left(sorted_keys, key)]
            self._commits[bucket].discard(key)
            self._committed.pop(key, None)
            removed.append(key)
        if removed:  # the newest LastModified may have gone with them: keep it for a restart
            self._write(self._clock_file, str(self._last_ms).encode())
        return removed

    def _unlink(self, bucket: str, key: str) -> None:
        self._retired.pop((bucket, key), None)
        folder = self.root / bucket
        path = folder / store_path(key)
        path.unlink(missing_ok=True)
        self._prune(path.parent, folder)

    def _purge_retired(self) -> None:
        """Delete the files of retired batches whose grace has passed."""
        now = self.clock()
        for bucket, key in [k for k, (until, _) in self._retired.items() if until <= now]:
            self._unlink(bucket, key)

    @staticmethod
    def _prune(folder: Path, top: Path) -> None:
        """Remove `folder` and its parents up to `top` while they are empty."""
        while folder != top:
            try:
                folder.rmdir()
            except OSError:  # not empty
                return
            folder = folder.parent

    def expire(
        self,
        retention_seconds: float | None,
        max_batches: int | None,
        *,
        keep_read: int | None = None,
        limit: int = 5000,
    ) -> int:
        """Delete the oldest `.batch` objects of every partition, as Kafka retention would.

        A partition keeps its newest `max_batches` batches and those younger than
        `retention_seconds`, and always its newest one (tansu reads the log end from it). With
        `keep_read`, a partition that consumer groups read (groups that committed an offset for
        it within `retention_seconds`) keeps only what one of them has not read yet, plus its
        newest `keep_read` batches: tansu lists every stored batch on each fetch, so a log no
        longer than its slowest reader needs keeps fetches short. Only a leading run of batches
        is deleted, so the log never gets holes; `watermark.json`, `meta.json`, offsets and
        groups are never touched. A deleted batch leaves the listings at once and its file
        `RETIRED_SECONDS` later, so a reader that has just listed it can still read it. At most
        `limit` objects go per call, so one call never blocks the server for long. Returns how
        many were deleted.
        """
        with self._lock:
            self._purge_retired()
        deleted = 0
        horizon_ms = None
        if retention_seconds is not None:
            horizon_ms = (self.clock() - retention_seconds) * 1000
        with self._lock:
            partitions = [(b, p) for b, found in self._partitions.items() for p in sorted(found)]
            read = (
                {b: self._read_up_to(b, horizon_ms) for b in self._partitions} if keep_read else {}
            )
        for bucket, partition in partitions:
            read_up_to = read.get(bucket, {}).get(partition)
            keep = keep_read if read_up_to is not None else None
            with self._lock:
                if not self._may_expire(bucket, partition, horizon_ms, max_batches, keep):
                    continue
                batches = self._batches(bucket, partition)
                count = max(0, len(batches) - max_batches) if max_batches is not None else 0
                if horizon_ms is not None:
                    while count < len(batches) and batches[count][1].modified_ms < horizon_ms:
                        count += 1
                if keep is not None and read_up_to is not None:
                    count = max(count, fully_read(batches, read_up_to, keep))
                count = min(count, len(batches) - 1, limit - deleted)
                if count > 0:
                    until = self.clock() + RETIRED_SECONDS
                    for key, meta in batches[:count]:
                        self._retired[(bucket, key)] = (until, meta)
                    self._unlist(bucket, [key for key, _ in batches[:count]])
                    deleted += count
        return deleted

    def _read_up_to(self, bucket: str, horizon_ms: float | None) -> dict[str, int]:
        """Per `records/` prefix, the lowest offset committed by a group that committed for it
        after `horizon_ms`: every batch below it has been read by every such group."""
        objects = self._meta[bucket]
        lowest: dict[str, int] = {}
        for key in self._commits[bucket]:
            meta = objects[key]
            if horizon_ms is not None and meta.modified_ms < horizon_ms:
                continue  # a group gone quiet for longer than retention holds nothing back
            cached = self._committed.get(key)
            if cached is None or cached[0] != meta.modified_ms:
                body = json.loads(self._body(bucket, key))
                cached = self._committed[key] = (meta.modified_ms, int(body["offset"]))
            match = COMMIT.fullmatch(key)
            assert match is not None  # only commit keys are in `_commits`
            records = records_of(match)
            lowest[records] = min(lowest.get(records, cached[1]), cached[1])
        return lowest

    def _may_expire(
        self,
        bucket: str,
        partition: str,
        horizon_ms: float | None,
        max_batches: int | None,
        keep_read: int | None,
    ) -> bool:
        """A quick test, two bisects, that rules out most partitions on most passes."""
        keys = self._keys[bucket]
        low = bisect.bisect_left(keys, partition)
        high = bisect.bisect_left(keys, after(partition), low)
        if low == high:
            return False
        if max_batches is not None and high - low > max_batches:
            return True
        if keep_read is not None and high - low > keep_read:
            return True
        if horizon_ms is None:
            return False
        first = keys[low]  # the oldest batch, unless something else sorts first
        return not first.endswith(".batch") or self._meta[bucket][first].modified_ms < horizon_ms

    def _batches(self, bucket: str, partition: str) -> list[tuple[str, Meta]]:
        """The batches under `partition` (a `.../records/` prefix), oldest offset first."""
        keys = self._keys[bucket]
        objects = self._meta[bucket]
        low = bisect.bisect_left(keys, partition)
        high = bisect.bisect_left(keys, after(partition), low)
        return [
            (key, objects[key])
            for key in keys[low:high]
            if key.endswith(".batch") and "/" not in key[len(partition) :]
        ]


def fully_read(batches: list[tuple[str, Meta]], read_up_to: int, keep: int) -> int:
    """How many of the oldest `batches` lie wholly below offset `read_up_to` and beyond the
    newest `keep`: a batch ends where the next one begins.

    >>> batches = [(f"r/{o:020d}.batch", Meta(1, '"e"', 0)) for o in (0, 5, 9, 12)]
    >>> fully_read(batches, 9, 0), fully_read(batches, 10, 0), fully_read(batches, 9, 3)
    (2, 2, 1)
    """
    count, most = 0, min(len(batches) - keep, len(batches) - 1)
    while count < most and base_offset(batches[count + 1][0]) <= read_up_to:
        count += 1
    return count


def base_offset(key: str) -> int:
    """The first offset of a batch object.

    >>> base_offset("clusters/c/topics/t/partitions/0000000000/records/00000000000000000042.batch")
    42
    """
    return int(key.rsplit("/", 1)[1].removesuffix(".batch"))
