"""The broker's log store: a small S3-compatible server made for tansu's `s3://` storage.

tansu keeps its log as one object per batch and relies on conditional PUTs (`If-None-Match: *`,
`If-Match`) for every offset it hands out; the S3 servers available here fail it. s3rver 3.7.1
ignores those conditions: with 4 concurrent producers, 292 of 400 acknowledged messages were
lost, and after a broker restart offsets began again at 0, overwriting the log. moto honours
them but keeps everything in memory and lists slowly (about 0.2 s per 1000 keys). tansu also
never deletes anything (it ignores retention.ms; DeleteRecords panics), and every fetch of a
consumer behind the log end lists the partition's whole `records/` prefix, so a long log makes
fetches slow until they return nothing. This server appends each object to a segment file on
local disk (it survives `kill -9`), checks and writes conditional PUTs as one step, lists from a
sorted in-memory index, and deletes each partition's oldest batches itself (`Store.Expire`):
by age and count, and, with `--keep-read`, every batch no consumer group reading the partition
may read again (tansu writes their offsets into the same bucket; the flows name where a
restart resumes in the commit's metadata, `resume=<offset>`); the count never removes what a
group may still read. A partition's listings start where the slowest group keeping up reads
next (one that committed in the last `--listed-seconds`, 10, or whose next batch is younger),
so they stay as short as the slowest reader allows, an idle reader at the end of the log stays
in them, and one stopped while batches wait for it drops out (back, it commits again:
`flows.kafka`).
Investigation and measurements: tansu 0.6.0 (cf82d41), object_store 0.13.

The server is Go (`main.go`, `store.go`, `s3.go` here; the standard library only), built by
`make install` into the virtualenv's `bin/driftline-logstore`. Every fetch of a consumer costs
tansu a listing and a read per batch here, and six consumers read `inference.results`: the
Python server of the same design (uvicorn) took 120-300 us a request and saturated the path
behind bursts of single requests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from servers.recipe import Recipe, port_open

BINARY = Path(sys.executable).with_name("driftline-logstore")
"""Where `make install` builds the server: beside the virtualenv's Python."""

BUCKET = "tansu"
"""The bucket tansu uses with `--storage-engine s3://tansu/`."""


PROCS = "1"
"""Go's `GOMAXPROCS` for the store (an operator's own `GOMAXPROCS` wins). With one processor
the runtime does not wake a second thread to spin for work at each of tansu's ~1,200 requests a
second: at 200 requests/s through the stack the store took 14-17% of a core against 21-24%, and
128 clients got 1,701-1,741 answers/s against 1,351-1,523 (two alternating rounds, ad hoc)."""


def recipe(
    data_dir: Path, port: int, retention_seconds: float, max_batches: int, keep_read: int
) -> Recipe:
    """The log store on 127.0.0.1:`port`, keeping its objects in `data_dir`.

    >>> recipe(Path("/tmp/store"), 9310, 3600, 1000, 20).env["GOMAXPROCS"] == (
    ...     os.environ.get("GOMAXPROCS", PROCS))
    True
    """
    argv = [str(binary()), "--root", str(data_dir)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--bucket", BUCKET]
    argv += ["--retention-seconds", str(retention_seconds), "--max-batches", str(max_batches)]
    argv += ["--keep-read", str(keep_read)]
    metrics = f"http://127.0.0.1:{port}/metrics"
    env = {"GOMAXPROCS": os.environ.get("GOMAXPROCS", PROCS)}
    return Recipe("logstore", argv, env, lambda: port_open("127.0.0.1", port), metrics=metrics)


def binary() -> Path:
    """The built server; a clear error when it is missing."""
    if not BINARY.exists():
        raise FileNotFoundError(f"{BINARY} is missing: `make install` builds it (Go 1.19+)")
    return BINARY


def client_env(port: int) -> dict[str, str]:
    """What tansu needs to reach it: the key id and secret are not checked, but object_store
    looks for instance credentials when there are none.

    >>> client_env(9000)["AWS_ENDPOINT"]
    'http://127.0.0.1:9000'
    """
    return {
        "AWS_ACCESS_KEY_ID": "logstore",
        "AWS_SECRET_ACCESS_KEY": "logstore",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
    }
