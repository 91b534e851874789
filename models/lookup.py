"""Reading the model registry without MLflow: the version an alias names, whether a version is
registered, and every registered model with its aliases.

The inference flow re-reads the aliases it serves every `DRIFTLINE_MODEL_REFRESH_SECONDS`, and
MLflow's client with its SQLAlchemy store cost that process 90 MB of its idle RSS (measured:
76 -> 166 MB to import MLflow and resolve one alias), kept for good once imported. These reads
need neither: the tracking server's REST API (`http(s)://` tracking URIs) or one query on the
sqlite file of the embedded default, on the rows MLflow's `get_model_version_by_alias` reads
(`tests/unit/models/test_lookup.py` checks the sqlite reads against MLflow's client; the REST
reads run in `tests/integration/test_cluster.py`). A store of another kind (`NotReadable`) is
read through MLflow by `models.registry`.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

LATEST = "latest"
"""MLflow's reserved alias: the highest version that is not deleted."""

_DELETED = "Deleted_Internal"
"""`current_stage` of a deleted version in MLflow's tables (`STAGE_DELETED_INTERNAL`)."""

_WORKSPACE = "default"
"""MLflow's workspace of every row when workspaces are not used (`DEFAULT_WORKSPACE_NAME`)."""

_LIVE = f"v.current_stage != '{_DELETED}' AND v.workspace = '{_WORKSPACE}'"
"""The condition on `model_versions v` that MLflow's reads put on a version."""

TIMEOUT_SECONDS = 10.0


class NotReadable(ValueError):
    """A tracking URI this module does not read (MLflow reads it)."""


def alias_version(tracking_uri: str, name: str, alias: str) -> str | None:
    """The version `name@alias` names, or None when the model, the alias or the version is not
    there (as MLflow's `get_model_version_by_alias` fails then)."""
    if tracking_uri.startswith(("http://", "https://")):
        query = {"name": name, "alias": alias}
        found = _rest(tracking_uri, "registered-models/alias", query)
        return None if found is None else str(found["model_version"]["version"])
    if alias.lower() == LATEST:
        sql = f"SELECT max(v.version) FROM model_versions v WHERE v.name = ? AND {_LIVE}"
        (rows,) = _sqlite(tracking_uri, (sql, [name]))
    else:
        sql = (
            "SELECT a.version FROM registered_model_aliases a JOIN model_versions v"
            " ON v.workspace = a.workspace AND v.name = a.name AND v.version = a.version"
            f" WHERE a.name = ? AND a.alias = ? AND {_LIVE}"
        )
        (rows,) = _sqlite(tracking_uri, (sql, [name, alias]))
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


def has_version(tracking_uri: str, name: str, version: str) -> bool:
    """Whether `name` version `version` is registered and not deleted."""
    if not (version.isascii() and version.isdigit()):  # "²" is a digit to `isdigit`
        return False
    if tracking_uri.startswith(("http://", "https://")):
        query = {"name": name, "version": version}
        return _rest(tracking_uri, "model-versions/get", query) is not None
    sql = f"SELECT 1 FROM model_versions v WHERE v.name = ? AND v.version = ? AND {_LIVE}"
    (rows,) = _sqlite(tracking_uri, (sql, [name, int(version)]))
    return bool(rows)


def registered(tracking_uri: str) -> dict[str, tuple[set[str], str | None]]:
    """Every registered model: its aliases and its highest version that is not deleted (None
    without one), as MLflow's `search_registered_models` tells them."""
    if tracking_uri.startswith(("http://", "https://")):
        models: dict[str, tuple[set[str], str | None]] = {}
        query = {"max_results": "1000"}
        while True:
            page = _rest(tracking_uri, "registered-models/search", query) or {}
            for model in page.get("registered_models", []):
                versions = [int(v["version"]) for v in model.get("latest_versions", [])]
                named = {a["alias"] for a in model.get("aliases", [])}
                models[model["name"]] = (named, str(max(versions)) if versions else None)
            if not page.get("next_page_token"):
                return models
            query["page_token"] = page["next_page_token"]
    rows, aliases, latest = _sqlite(
        tracking_uri,
        (f"SELECT name FROM registered_models WHERE workspace = '{_WORKSPACE}'", []),
        (f"SELECT name, alias FROM registered_model_aliases WHERE workspace = '{_WORKSPACE}'", []),
        (f"SELECT v.name, max(v.version) FROM model_versions v WHERE {_LIVE} GROUP BY v.name", []),
    )
    newest = {name: str(version) for name, version in latest}
    return {
        name: ({alias for named, alias in aliases if named == name}, newest.get(name))
        for (name,) in rows
    }


def _rest(tracking_uri: str, path: str, query: dict[str, str]) -> dict[str, Any] | None:
    """GET one registry endpoint; None for the answers that mean "no such thing"."""
    try:
        encoded = urllib.parse.urlencode(query)
    except UnicodeEncodeError:  # a lone surrogate: no name in the registry has one
        return None
    url = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/{path}?{encoded}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found
    except urllib.error.HTTPError as exc:
        if exc.code in (400, 404):  # RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE
            return None
        raise


def _sqlite(tracking_uri: str, *queries: tuple[str, list[Any]]) -> list[list[tuple[Any, ...]]]:
    """The rows of each (sql, parameters), read in one connection."""
    if not tracking_uri.startswith("sqlite:///"):
        raise NotReadable(tracking_uri)
    path = tracking_uri.removeprefix("sqlite:///")
    nothing: list[list[tuple[Any, ...]]] = [[] for _ in queries]
    try:
        con = sqlite3.connect(
            f"file:{urllib.parse.quote(path)}?mode=ro", uri=True, timeout=TIMEOUT_SECONDS
        )
    except sqlite3.OperationalError:
        return nothing  # no store yet: nothing is registered
    try:
        return [con.execute(sql, parameters).fetchall() for sql, parameters in queries]
    except UnicodeEncodeError:  # a lone surrogate: no name in the registry has one
        return nothing
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return nothing  # a store MLflow has not set up yet
        raise
    finally:
        con.close()
