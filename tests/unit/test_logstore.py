"""The log store (`servers.logstore`, a Go server) over HTTP: the S3 semantics tansu and other S3
clients depend on. Its store, paths and retention are tested in Go (`servers/logstore/*_test.go`,
run by `make test`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest

from servers.logstore import client_env, recipe
from servers.recipe import Recipe, free_port

NS = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
RECORDS = "clusters/c/topics/t/partitions/{:010d}/records/"


def started(served: Recipe) -> subprocess.Popen[bytes]:
    """The recipe's server, once it accepts connections."""
    process = subprocess.Popen(served.argv, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not served.ready():
        assert process.poll() is None, "the log store exited"
        assert time.monotonic() < deadline, "the log store did not start"
        time.sleep(0.02)
    return process


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[str]:
    """The log store on a free loopback port, with retention on (as `driftline up` runs it)."""
    port = free_port()
    process = started(
        recipe(tmp_path, port, retention_seconds=3600, max_batches=5000, keep_read=100)
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(10)


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
        process = started(served)
        try:
            if attempt == 0:
                httpx.put(url, content=b"kept").raise_for_status()
            assert httpx.get(url).content == b"kept"
        finally:
            process.kill()
            process.wait(10)


def test_bad_requests_get_s3_errors(server: str) -> None:
    with httpx.Client(base_url=server) as http:
        for response, status, code in [
            (http.get("/"), 501, "NotImplemented"),
            (http.post("/tansu?delete", content=b"not xml"), 400, "MalformedXML"),
            (
                http.get("/tansu", params={"list-type": "2", "max-keys": "x"}),
                400,
                "InvalidArgument",
            ),
            (
                http.get("/tansu", params={"list-type": "2", "continuation-token": "!"}),
                400,
                "InvalidArgument",
            ),
            (http.patch("/tansu/k"), 405, "MethodNotAllowed"),
            (http.put("/tansu/" + "k" * 1025, content=b"x"), 400, "KeyTooLongError"),  # S3: 1,024
        ]:
            assert response.status_code == status, response.text
            assert ElementTree.fromstring(response.content).findtext("Code") == code
