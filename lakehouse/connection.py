"""Open the lake: a DuckDB connection with the DuckLake catalog attached as `lake`.

Extensions are loaded from the `duckdb-extension-*` wheels, never downloaded: DuckDB's
auto-install is switched off, so a missing extension fails loudly instead of reaching out to
the network. The default catalog is SQLite, which lets any number of readers query the lake
while the lake writer commits (a DuckDB-file catalog admits only one process).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import duckdb

from driftline.settings import LakeSettings


def _extensions(lake: LakeSettings) -> list[tuple[str, str]]:
    """(python package, extension name) of what this lake needs: its catalog's scanner, and
    httpfs for ENCRYPTED and s3:// data paths. Each one loaded costs every process 7-10 MB."""
    scanner = "postgres_scanner" if lake.catalog.startswith("postgres:") else "sqlite_scanner"
    return [
        ("duckdb_extension_ducklake", "ducklake"),
        (f"duckdb_extension_{scanner}", scanner),
        ("duckdb_extension_httpfs", "httpfs"),
    ]


def extension_path(package: str, name: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed")
    root = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    return root / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"


def _attach_sql(lake: LakeSettings, read_only: bool) -> str:
    options = [] if read_only else [f"DATA_PATH '{lake.data_path}'"]
    if not read_only:
        if lake.encrypted:
            options.append("ENCRYPTED")
        # Small inserts would otherwise be inlined as plain rows in the catalog, unencrypted.
        options.append("DATA_INLINING_ROW_LIMIT 0")
    if read_only:
        options.append("READ_ONLY")
    return f"ATTACH 'ducklake:{lake.catalog}' AS lake ({', '.join(options)})"


def connect(lake: LakeSettings, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB with the lake attached as `lake`.

    Pass `read_only=True` from processes that only query (CLI, gateway look-ups, tests): they
    may run beside the writer.
    """
    if not read_only and lake.catalog.startswith("sqlite:"):
        Path(lake.catalog.removeprefix("sqlite:")).parent.mkdir(parents=True, exist_ok=True)
    if not read_only and "://" not in lake.data_path:
        Path(lake.data_path).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for package, name in _extensions(lake):
        con.execute(f"LOAD '{extension_path(package, name)}'")
    if lake.s3_endpoint:
        # Path-style URLs over plain HTTP: the S3-compatible storage of a one-machine stack.
        con.execute(
            "CREATE SECRET lake_s3 (TYPE s3, KEY_ID ?, SECRET ?, ENDPOINT ?, URL_STYLE 'path', "
            "USE_SSL false, REGION 'us-east-1')",
            [lake.s3_key_id, lake.s3_secret, lake.s3_endpoint],
        )
    con.execute(_attach_sql(lake, read_only))
    if not read_only and lake.catalog.startswith("sqlite:"):
        # The catalog holds the Parquet keys and plain-text min/max statistics of every column
        # (user text included): only its owner may read it.
        os.chmod(lake.catalog.removeprefix("sqlite:"), 0o600)
    con.execute("USE lake")  # so `SELECT * FROM inferences` needs no `lake.` prefix
    return con
