"""`python -m servers.logstore --root DIR --port N --bucket tansu [--max-batches K] ...`

Serves the store with uvicorn and runs retention on the same event loop, so retention never
interleaves with a request's check-and-write: twice a second while anything is written, every
30 s while nothing is.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path

import uvicorn

from servers.logstore.app import S3App
from servers.logstore.store import LogStore

log = logging.getLogger("servers.logstore")

RETENTION_EVERY = 0.5
"""Seconds between retention passes. A pass that deletes nothing costs two bisects per
partition; between passes a partition can grow by this many seconds of batches beyond
`--max-batches` (about 220 at the ~450 single-record batches/s one producer reaches)."""

RETENTION_IDLE_EVERY = 30.0
"""Seconds between retention passes while nothing is written: only age can then expire a batch
(nothing new to cap, no commit that moved), and a pass every half second was most of an idle
store's CPU (0.3% of a core)."""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m servers.logstore", description=__doc__)
    parser.add_argument("--root", type=Path, required=True, help="folder that holds the objects")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bucket", action="append", required=True, help="repeat for more")
    parser.add_argument("--retention-seconds", type=float, help="delete batches older than this")
    parser.add_argument("--max-batches", type=int, help="keep at most this many per partition")
    parser.add_argument(
        "--keep-read",
        type=int,
        help="in a partition that consumer groups read, keep only what one has not read yet "
        "plus this many batches",
    )
    parser.add_argument("--fsync", action="store_true", help="fsync every write (power loss)")
    args = parser.parse_args(argv)
    if args.host not in {"127.0.0.1", "::1", "localhost"}:
        parser.error("--host must be a loopback address: the server checks no signatures")
    return args


async def retain(store: LogStore, args: argparse.Namespace) -> None:
    seen_write, passed_at = -1, 0.0
    while True:
        await asyncio.sleep(RETENTION_EVERY)
        quiet = store.last_write_ms == seen_write
        if quiet and time.monotonic() - passed_at < RETENTION_IDLE_EVERY:
            continue
        seen_write, passed_at = store.last_write_ms, time.monotonic()
        try:
            deleted = store.expire(
                args.retention_seconds, args.max_batches, keep_read=args.keep_read
            )
        except Exception:  # the next pass tries again; the server keeps serving
            log.exception("retention pass failed")
            continue
        if deleted:
            log.info("retention deleted %d batches", deleted)


async def serve(args: argparse.Namespace) -> None:
    store = LogStore(args.root, args.bucket, fsync=args.fsync)
    config = uvicorn.Config(
        S3App(store),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    retention = None
    if {args.retention_seconds, args.max_batches, args.keep_read} != {None}:
        retention = asyncio.create_task(retain(store, args))
    try:
        await server.serve()
    finally:
        if retention is not None:
            retention.cancel()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="logstore %(levelname)s %(message)s")
    asyncio.run(serve(parse(argv)))


if __name__ == "__main__":
    main()
