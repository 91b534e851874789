"""The log store (`servers.logstore`): the S3 semantics tansu depends on, on disk and over HTTP."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
import uvicorn

from servers.logstore import client_env, recipe
from servers.logstore.app import S3App
from servers.logstore.store import (
    RETIRED_SECONDS,
    LogStore,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
    store_path,
)
from servers.recipe import free_port

NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
RECORDS = "clusters/c/topics/t/partitions/{:010d}/records/"


class Clock:
    """A clock the tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def store(tmp_path: Path, clock: Clock) -> LogStore:
    return LogStore(tmp_path, ["b"], clock=clock)


def batch(partition: int, offset: int) -> str:
    return RECORDS.format(partition) + f"{offset:020d}.batch"


# Conditional writes


def test_create_refuses_an_existing_key(store: LogStore) -> None:
    first = store.put("b", "k", b"one", if_none_match="*")
    with pytest.raises(PreconditionFailed):
        store.put("b", "k", b"two", if_none_match="*")
    assert store.get("b", "k") == (first, b"one")


def test_update_needs_the_current_etag(store: LogStore) -> None:
    with pytest.raises(PreconditionFailed):  # the key does not exist yet
        store.put("b", "k", b"one", if_match='"0"')
    first = store.put("b", "k", b"one")
    second = store.put("b", "k", b"two", if_match=first.etag)
    with pytest.raises(PreconditionFailed):
        store.put("b", "k", b"three", if_match=first.etag)
    assert store.get("b", "k") == (second, b"two")
    assert second.etag == '"b8a9f715dbb64fd5c56e7783c6820a61"'  # md5("two")


def test_plain_put_overwrites(store: LogStore) -> None:
    store.put("b", "k", b"one")
    meta = store.put("b", "k", b"two")
    assert store.get("b", "k") == (meta, b"two")
    assert store.list_objects("b").contents == [("k", meta)]


def test_missing_keys_and_buckets(store: LogStore) -> None:
    with pytest.raises(NoSuchKey):
        store.get("b", "nothing")
    with pytest.raises(NoSuchBucket):
        store.put("elsewhere", "k", b"")


# Listing


def test_listing_is_sorted_and_paged(store: LogStore) -> None:
    keys = [f"p/{i:05d}" for i in range(2500)]
    for key in reversed(keys):
        store.put("b", key, b"x")
    store.put("b", "q", b"outside the prefix")
    seen: list[str] = []
    start = ""
    pages = 0
    while True:
        page = store.list_objects("b", "p/", start=start)
        seen += [key for key, _ in page.contents]
        pages += 1
        if page.next_start is None:
            break
        start = page.next_start
    assert seen == keys
    assert pages == 3


def test_delimiter_folds_common_prefixes(store: LogStore) -> None:
    for key in ["g/a.json", "g/a/offsets/1.json", "g/a/offsets/2.json", "g/b/x", "g/c.json"]:
        store.put("b", key, b"{}")
    page = store.list_objects("b", "g/", delimiter="/")
    assert [key for key, _ in page.contents] == ["g/a.json", "g/c.json"]
    assert page.prefixes == ["g/a/", "g/b/"]
    # Paging by two: a common prefix counts as one entry and never comes back.
    entries: list[str] = []
    start = ""
    while True:
        page = store.list_objects("b", "g/", delimiter="/", start=start, max_keys=2)
        entries += [key for key, _ in page.contents] + page.prefixes
        if page.next_start is None:
            break
        start = page.next_start
    assert sorted(entries) == ["g/a.json", "g/a/", "g/b/", "g/c.json"]


# LastModified and restarts


def test_last_modified_increases_with_every_write(store: LogStore, clock: Clock) -> None:
    stamps = [store.put("b", f"k{i % 3}", b"x").modified_ms for i in range(20)]
    assert stamps == sorted(set(stamps))  # strictly increasing, the clock never moved
    clock.now -= 3600  # even when the wall clock goes back
    assert store.put("b", "k", b"x").modified_ms > stamps[-1]


def test_a_restart_restores_every_object(tmp_path: Path, clock: Clock) -> None:
    store = LogStore(tmp_path, ["b"], clock=clock)
    keys = ["a", "a/b", "a/b/c", "a/../x", "a//b", "a/", "dots.in/names.json", "€ %2F+"]
    metas = {key: store.put("b", key, key.encode()) for key in keys}
    (tmp_path / "b" / "a" / ".cut-short.tmp").write_bytes(b"a write a kill interrupted")
    again = LogStore(tmp_path, ["b"], clock=clock)
    assert again.list_objects("b").contents == sorted(metas.items())
    assert all(again.get("b", key) == (metas[key], key.encode()) for key in keys)
    assert not (tmp_path / "b" / "a" / ".cut-short.tmp").exists()


def test_last_modified_keeps_increasing_after_a_restart(tmp_path: Path, clock: Clock) -> None:
    store = LogStore(tmp_path, ["b"], clock=clock)
    store.put("b", "old", b"x")
    newest = store.put("b", "new", b"x").modified_ms
    store.delete_many("b", ["new"])  # the newest stamp is no longer on any object
    clock.now -= 60
    again = LogStore(tmp_path, ["b"], clock=clock)
    assert again.put("b", "next", b"x").modified_ms == newest + 1


def test_delete_many_removes_files_and_empty_folders(tmp_path: Path, store: LogStore) -> None:
    store.put("b", "x/y/z", b"x")
    store.put("b", "x/keep", b"x")
    store.delete_many("b", ["x/y/z", "never/existed"])
    assert [key for key, _ in store.list_objects("b").contents] == ["x/keep"]
    assert not (tmp_path / "b" / "x" / "y").exists()
    assert (tmp_path / "b" / store_path("x/keep")).exists()


# Retention


def test_retention_keeps_the_newest_batches(store: LogStore) -> None:
    for offset in range(10):
        store.put("b", batch(0, offset), b"x")
    store.put("b", batch(1, 0), b"x")
    others = ["clusters/c/meta.json", RECORDS.format(0)[:-8] + "watermark.json"]
    for key in others:
        store.put("b", key, b"{}")
    assert store.expire(None, 4) == 6
    left = [key for key, _ in store.list_objects("b").contents]
    assert left == sorted([*(batch(0, o) for o in range(6, 10)), batch(1, 0), *others])
    assert store.expire(None, 4) == 0


def test_an_expired_batch_stays_readable_for_a_while_after_it_left_the_listing(
    tmp_path: Path, store: LogStore, clock: Clock
) -> None:
    """tansu lists a partition's batches, then reads them: retention in between must not fail
    the read (it failed the whole fetch, and kcat with it)."""
    for offset in range(3):
        store.put("b", batch(0, offset), b"x%d" % offset)
    assert store.expire(None, 1) == 2
    assert [key for key, _ in store.list_objects("b").contents] == [batch(0, 2)]
    assert store.get("b", batch(0, 0))[1] == b"x0"  # listed before, read now
    clock.now += RETIRED_SECONDS
    store.expire(None, 1)
    with pytest.raises(NoSuchKey):
        store.get("b", batch(0, 0))
    assert not (tmp_path / "b" / store_path(batch(0, 0))).exists()
    assert store.get("b", batch(0, 2))[1] == b"x2"


def test_retention_by_age_never_deletes_a_partitions_last_batch(
    store: LogStore, clock: Clock
) -> None:
    for offset in range(5):
        store.put("b", batch(0, offset), b"x")
        clock.now += 10
    store.put("b", RECORDS.format(0) + "notes.txt", b"not a batch")
    assert store.expire(25, None) == 3  # written 50, 40 and 30 s ago
    clock.now += 3600
    assert store.expire(25, None) == 1
    left = [key for key, _ in store.list_objects("b", RECORDS.format(0)).contents]
    assert left == [batch(0, 4), RECORDS.format(0) + "notes.txt"]


def test_retention_deletes_at_most_limit_per_pass(store: LogStore) -> None:
    for partition in range(3):
        for offset in range(5):
            store.put("b", batch(partition, offset), b"x")
    assert store.expire(None, 1, limit=5) == 5
    assert store.expire(None, 1, limit=5) == 5
    assert store.expire(None, 1, limit=5) == 2
    assert len(store.list_objects("b").contents) == 3


def commit(store: LogStore, group: str, partition: int, offset: int) -> None:
    """What tansu writes for a consumer group's OffsetCommit."""
    key = f"clusters/c/groups/consumers/{group}/offsets/t/partitions/{partition:010d}.json"
    store.put("b", key, b'{"offset":%d,"leader_epoch":-1,"timestamp":null,"metadata":""}' % offset)


def test_retention_keeps_what_a_consumer_group_has_not_read(store: LogStore) -> None:
    for offset in range(0, 20, 2):  # ten batches of two records: 0-1, 2-3, ..., 18-19
        store.put("b", batch(0, offset), b"x")
        store.put("b", batch(1, offset), b"x")
    assert store.expire(None, 100, keep_read=2) == 0  # no group reads them: kept
    commit(store, "slow", 0, 7)  # next to read: 7, inside the batch at 6
    commit(store, "fast", 0, 20)
    assert store.expire(None, 100, keep_read=2) == 3  # 0, 2 and 4 (the batch at 6 stays)
    assert next(k for k, _ in store.list_objects("b", RECORDS.format(0)).contents) == batch(0, 6)
    commit(store, "slow", 0, 20)
    assert store.expire(None, 100, keep_read=2) == 5  # the newest two stay
    assert len(store.list_objects("b", RECORDS.format(1)).contents) == 10  # partition 1 unread


def test_a_group_quiet_for_longer_than_retention_holds_nothing_back(
    store: LogStore, clock: Clock
) -> None:
    commit(store, "gone", 0, 0)
    commit(store, "live", 0, 0)
    for offset in range(5):
        store.put("b", batch(0, offset), b"x")
    clock.now += 30
    commit(store, "live", 0, 5)
    assert store.expire(3600, 100, keep_read=1) == 0  # "gone" has read nothing
    assert store.expire(20, 100, keep_read=1) == 4  # batches are 30 s old: age alone removes them
    for offset in range(5, 10):
        store.put("b", batch(0, offset), b"x")
    commit(store, "live", 0, 10)
    clock.now += 15
    assert store.expire(20, 100, keep_read=1) == 5  # "gone" last committed 45 s ago


# Over HTTP


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in a thread."""
    port = free_port()
    store = LogStore(tmp_path, ["tansu"])
    config = uvicorn.Config(S3App(store), port=port, log_config=None, lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(10)


def test_http_conditional_put_and_get(server: str) -> None:
    with httpx.Client(base_url=server) as http:
        url = "/tansu/clusters/c/topics/t%20x/watermark.json"
        created = http.put(url, content=b'{"high":1}', headers={"If-None-Match": "*"})
        assert created.status_code == 200
        etag = created.headers["ETag"]
        again = http.put(url, content=b'{"high":9}', headers={"If-None-Match": "*"})
        assert again.status_code == 412
        assert ElementTree.fromstring(again.content).findtext("Code") == "PreconditionFailed"
        assert http.put(url, content=b"{}", headers={"If-Match": '"stale"'}).status_code == 412
        assert http.get(url, headers={"If-None-Match": etag}).status_code == 304
        got = http.get(url, headers={"If-None-Match": '"stale"'})
        assert (got.status_code, got.content, got.headers["ETag"]) == (200, b'{"high":1}', etag)
        assert got.headers["Content-Length"] == "10"
        assert got.headers["Last-Modified"].endswith(" GMT")
        head = http.head(url)
        assert (head.status_code, head.headers["Content-Length"]) == (200, "10")
        missing = http.get("/tansu/none")
        assert missing.status_code == 404
        assert ElementTree.fromstring(missing.content).findtext("Code") == "NoSuchKey"
        assert http.get("/other?list-type=2").status_code == 404


def test_http_list_pages_and_delete(server: str) -> None:
    prefix = RECORDS.format(0)
    with httpx.Client(base_url=server) as http:
        for offset in range(1001):
            http.put(f"/tansu/{prefix}{offset:020d}.batch", content=b"x").raise_for_status()
        params = {"list-type": "2", "prefix": prefix}
        first = ElementTree.fromstring(http.get("/tansu", params=params).content)
        assert first.findtext("s3:IsTruncated", namespaces=NS) == "true"
        assert first.findtext("s3:KeyCount", namespaces=NS) == "1000"
        stamps = [e.text or "" for e in first.iterfind("s3:Contents/s3:LastModified", NS)]
        assert stamps == sorted(set(stamps)) and len(stamps[0]) == len("2023-11-14T22:13:20.123Z")
        token = first.findtext("s3:NextContinuationToken", namespaces=NS) or ""
        second = ElementTree.fromstring(
            http.get("/tansu", params=params | {"continuation-token": token}).content
        )
        assert second.findtext("s3:IsTruncated", namespaces=NS) == "false"
        keys = [e.text for e in second.iterfind("s3:Contents/s3:Key", NS)]
        assert keys == [f"{prefix}{1000:020d}.batch"]

        body = "".join(f"<Object><Key>{prefix}{o:020d}.batch</Key></Object>" for o in range(999))
        delete = f'<Delete xmlns="{NS["s3"]}">{body}</Delete>'
        result = http.post("/tansu?delete", content=delete)
        assert len(ElementTree.fromstring(result.content).findall("s3:Deleted", NS)) == 999
        listing = ElementTree.fromstring(http.get("/tansu", params=params).content)
        assert listing.findtext("s3:KeyCount", namespaces=NS) == "2"


def test_boto3_client(server: str) -> None:
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config
    from botocore.exceptions import ClientError

    s3 = boto3.client(
        "s3",
        endpoint_url=server,
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
    )
    etag = s3.put_object(Bucket="tansu", Key="dir/a b+€.json", Body=b"{}")["ETag"]
    assert s3.get_object(Bucket="tansu", Key="dir/a b+€.json")["Body"].read() == b"{}"
    assert s3.head_object(Bucket="tansu", Key="dir/a b+€.json")["ETag"] == etag
    with pytest.raises(ClientError, match="PreconditionFailed"):
        s3.put_object(Bucket="tansu", Key="dir/a b+€.json", Body=b"", IfNoneMatch="*")
    for i in range(5):
        s3.put_object(Bucket="tansu", Key=f"dir/sub/{i}", Body=b"x")
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket="tansu", Prefix="dir/", PaginationConfig={"PageSize": 2}
    )
    assert [o["Key"] for p in pages for o in p["Contents"]][:2] == ["dir/a b+€.json", "dir/sub/0"]
    folded = s3.list_objects_v2(Bucket="tansu", Prefix="dir/", Delimiter="/")
    assert [p["Prefix"] for p in folded["CommonPrefixes"]] == ["dir/sub/"]
    s3.delete_objects(
        Bucket="tansu", Delete={"Objects": [{"Key": f"dir/sub/{i}"} for i in range(4)]}
    )
    s3.delete_object(Bucket="tansu", Key="dir/a b+€.json")
    left = s3.list_objects_v2(Bucket="tansu")["Contents"]
    assert [o["Key"] for o in left] == ["dir/sub/4"]


def test_the_recipe_starts_a_server_that_keeps_objects(tmp_path: Path) -> None:
    port = free_port()
    served = recipe(tmp_path / "data", port, retention_seconds=3600, max_batches=500, keep_read=100)
    url = client_env(port)["AWS_ENDPOINT"] + "/tansu/k"
    for attempt in range(2):  # the second start finds the first one's object
        process = subprocess.Popen(served.argv, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while not served.ready():
                assert time.monotonic() < deadline, "the log store did not start"
                time.sleep(0.05)
            if attempt == 0:
                httpx.put(url, content=b"kept").raise_for_status()
            assert httpx.get(url).content == b"kept"
        finally:
            process.kill()
            process.wait(10)
