"""S3's HTTP protocol over a `LogStore`, as a raw ASGI app.

It answers the requests tansu's object_store client sends (PutObject with `If-Match` or
`If-None-Match: *`, GetObject with `If-None-Match`, ListObjectsV2, DeleteObjects), plus HEAD and
single DELETE for other S3 clients. Addressing is path-style (`/<bucket>/<key>`). Signatures
are not checked: the server listens on loopback only.

Handlers do their file I/O synchronously, once the request body is in: a conditional write is
then one step that no other request can interleave with.
"""

from __future__ import annotations

import base64
import binascii
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, quote, unquote_to_bytes
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from servers.logstore.store import MAX_KEYS, LogStore, Meta, StoreError, etag_matches

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

NAMESPACE = "http://s3.amazonaws.com/doc/2006-03-01/"
MAX_BODY = 64 * 2**20
XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


class BadRequest(StoreError):
    """A request this server does not understand or support."""

    def __init__(self, code: str, description: str, status: int = 400) -> None:
        Exception.__init__(self, description)
        self.code, self.status = code, status


def iso_time(ms: int) -> str:
    """S3's LastModified in listings, with milliseconds.

    >>> iso_time(1_700_000_000_123)
    '2023-11-14T22:13:20.123Z'
    """
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


@functools.lru_cache(maxsize=16384)
def contents(key: str, meta: Meta, url: bool) -> str:
    """One object's `<Contents>` in a listing. Kept: tansu lists a partition's every batch on
    each fetch of a consumer behind the end, so the same objects are listed many times a second
    under load (rendering them was 40% of this server's CPU).

    >>> meta = Meta(size=3, etag='"e"', modified_ms=1_700_000_000_123)
    >>> contents("a&b", meta, url=False)[:81]
    '<Contents><Key>a&amp;b</Key><LastModified>2023-11-14T22:13:20.123Z</LastModified>'
    >>> contents("a&b", meta, url=True)[:25]
    '<Contents><Key>a%26b</Key'
    """
    return (
        f"<Contents><Key>{quote(key, safe='/') if url else escape(key)}</Key>"
        f"<LastModified>{iso_time(meta.modified_ms)}</LastModified><ETag>{escape(meta.etag)}"
        f"</ETag><Size>{meta.size}</Size><StorageClass>STANDARD</StorageClass></Contents>"
    )


def encode_token(start: str) -> str:
    """An opaque continuation token for a page that starts at `start`.

    >>> decode_token(encode_token("a/b€")) == "a/b€"
    True
    """
    return base64.urlsafe_b64encode(start.encode()).decode()


def decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BadRequest("InvalidArgument", "The continuation token is not valid.") from None


class S3App:
    """The ASGI application: `uvicorn.run(S3App(store))`."""

    def __init__(self, store: LogStore) -> None:
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, raw_path = scope["method"], scope.get("raw_path") or scope["path"].encode()
        resource = ""
        try:
            resource = unquote_to_bytes(raw_path).decode()
            bucket, _, key = resource.lstrip("/").partition("/")
            fields = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
            query = {name: values[-1] for name, values in fields.items()}
            headers = {name.decode("latin-1"): v.decode("latin-1") for name, v in scope["headers"]}
            body = await read_body(receive)
            if not bucket:
                raise BadRequest("NotImplemented", "Listing buckets is not supported.", 501)
            if key:
                status, out_headers, out = self.object(method, bucket, key, query, headers, body)
            else:
                status, out_headers, out = self.bucket(method, bucket, query, body)
        except UnicodeDecodeError:
            status, out_headers, out = error(BadRequest("InvalidURI", "Not UTF-8."), resource)
        except StoreError as failure:
            status, out_headers, out = error(failure, resource)
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else out})

    def object(
        self,
        method: str,
        bucket: str,
        key: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if query or "x-amz-copy-source" in headers:
            raise BadRequest("NotImplemented", "Only plain object requests are supported.", 501)
        if method == "PUT":
            meta = self.store.put(
                bucket,
                key,
                body,
                if_match=headers.get("if-match"),
                if_none_match=headers.get("if-none-match"),
            )
            return 200, response_headers(0, {"ETag": meta.etag}), b""
        if method in ("GET", "HEAD"):
            meta = self.store.head(bucket, key)
            condition = headers.get("if-none-match")
            if condition is not None and etag_matches(condition, meta.etag):
                return 304, response_headers(0, {"ETag": meta.etag}), b""
            if method == "HEAD":
                return 200, object_headers(meta), b""
            meta, data = self.store.get(bucket, key)
            return 200, object_headers(meta), data
        if method == "DELETE":
            self.store.delete_many(bucket, [key])
            return 204, response_headers(0), b""
        raise BadRequest("MethodNotAllowed", f"{method} is not allowed on an object.", 405)

    def bucket(
        self, method: str, bucket: str, query: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if method == "GET" and query.get("list-type") == "2":
            return xml_response(self.list_objects(bucket, query))
        if method == "POST" and "delete" in query:
            return xml_response(self.delete(bucket, body))
        if method == "HEAD":
            self.store.list_objects(bucket, max_keys=1)  # NoSuchBucket if it does not exist
            return 200, response_headers(0), b""
        raise BadRequest("NotImplemented", "Only ListObjectsV2 and DeleteObjects exist here.", 501)

    def list_objects(self, bucket: str, query: dict[str, str]) -> str:
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        token = query.get("continuation-token")
        after = query.get("start-after", "")
        start = decode_token(token) if token is not None else after + "\0" if after else ""
        try:
            max_keys = min(max(int(query.get("max-keys", MAX_KEYS)), 1), MAX_KEYS)
        except ValueError:
            raise BadRequest("InvalidArgument", "max-keys must be a number.") from None
        page = self.store.list_objects(
            bucket, prefix, delimiter=delimiter, start=start, max_keys=max_keys
        )
        url = query.get("encoding-type") == "url"

        def text(value: str) -> str:
            return quote(value, safe="/") if url else escape(value)

        parts = [
            f'<ListBucketResult xmlns="{NAMESPACE}"><Name>{escape(bucket)}</Name>',
            f"<Prefix>{text(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>",
            f"<KeyCount>{len(page.contents) + len(page.prefixes)}</KeyCount>",
            f"<IsTruncated>{'true' if page.next_start is not None else 'false'}</IsTruncated>",
        ]
        if delimiter:
            parts.append(f"<Delimiter>{text(delimiter)}</Delimiter>")
        if url:
            parts.append("<EncodingType>url</EncodingType>")
        if token is not None:
            parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
        if after:
            parts.append(f"<StartAfter>{text(after)}</StartAfter>")
        if page.next_start is not None:
            parts.append(
                f"<NextContinuationToken>{encode_token(page.next_start)}</NextContinuationToken>"
            )
        parts.extend(contents(key, meta, url) for key, meta in page.contents)
        parts.extend(
            f"<CommonPrefixes><Prefix>{text(folded)}</Prefix></CommonPrefixes>"
            for folded in page.prefixes
        )
        parts.append("</ListBucketResult>")
        return "".join(parts)

    def delete(self, bucket: str, body: bytes) -> str:
        try:
            request = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            raise BadRequest("MalformedXML", "The Delete body is not XML.") from None
        keys = [
            field.text or ""
            for element in request
            if local(element.tag) == "Object"
            for field in element
            if local(field.tag) == "Key"
        ]
        quiet = any(local(e.tag) == "Quiet" and (e.text or "").strip() == "true" for e in request)
        if not keys or len(keys) > MAX_KEYS:
            raise BadRequest("MalformedXML", f"Delete takes 1 to {MAX_KEYS} keys.")
        self.store.delete_many(bucket, keys)
        deleted = [] if quiet else [f"<Deleted><Key>{escape(key)}</Key></Deleted>" for key in keys]
        return f'<DeleteResult xmlns="{NAMESPACE}">{"".join(deleted)}</DeleteResult>'


def local(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rpartition("}")[2]


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest("EntityTooLarge", f"Bodies are limited to {MAX_BODY} bytes.")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def response_headers(length: int, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    headers = {"Content-Length": str(length), "x-amz-request-id": uuid.uuid4().hex} | (extra or {})
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


def object_headers(meta: Meta) -> list[tuple[bytes, bytes]]:
    last_modified = formatdate(meta.modified_ms / 1000, usegmt=True)
    extra = {"ETag": meta.etag, "Last-Modified": last_modified}
    return response_headers(meta.size, extra | {"Content-Type": "application/octet-stream"})


def xml_response(document: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = (XML_HEAD + document).encode()
    return 200, response_headers(len(body), {"Content-Type": "application/xml"}), body


def error(failure: StoreError, resource: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """S3's XML error document."""
    document = (
        f"<Error><Code>{failure.code}</Code><Message>{escape(str(failure))}</Message>"
        f"<Resource>{escape(resource)}</Resource></Error>"
    )
    _, headers, body = xml_response(document)
    return failure.status, headers, body
