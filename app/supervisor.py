"""`driftline up`: run every part of the stack as a child process, and keep it running.

Units (`app.topology`) start in order: servers first (object store, PostgreSQL and MLflow in
the cluster profile, the broker), each waited for until it answers, then the flows and the
gateway. A unit whose process dies is stopped whole (a Bytewax cluster cannot lose one process)
and started again after a short, growing delay (`app.restarts`); its processes' own children
go with it, since each runs in a process group of its own. After the broker or its storage
starts again the topics are checked: when the broker's log was lost (memory storage, or storage
wiped), the flows and the gateway restart on fresh recovery stores, else they reconnect by
themselves. `up` writes what runs to `<home>/run/stack.json`.

Ctrl-C or SIGTERM stops everything, the servers last. Children get SIGTERM if `up` itself dies
(Linux parent-death signal), so a `kill -9` of `up` leaves nothing running on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app.restarts import RestartPolicy
from app.topology import BROKER, LOGSTORE, Spec, Topology, Unit, child_environment, topology
from driftline.settings import Settings
from driftline.tables import INFERENCES_WITH_FEEDBACK
from driftline.topics import RESULTS
from servers.recipe import http_get, run_as, wait

log = logging.getLogger(__name__)

READY_TIMEOUT = 180.0
"""Seconds a server may take to answer after a start (MLflow's server takes several)."""


class Broken(RuntimeError):
    """A unit keeps dying: the supervisor gives up rather than loop."""


_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
"""Resolved here, in the parent: the child calls it after switching to a server's own user,
which may not read the Python installation to import anything."""


def _terminate_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies."""
    if _PRCTL is not None:
        pr_set_pdeathsig = 1
        _PRCTL(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Process:
    """One child process, in a process group of its own, logging to a file."""

    spec: Spec
    env: dict[str, str]
    log_file: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as sink:
            self.popen = subprocess.Popen(
                self.spec.argv,
                env=self.env | self.spec.env,
                cwd=self.spec.cwd,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches `up` only, which stops children in order
                preexec_fn=_terminate_with_parent,
                **run_as(self.spec.user),
            )
        log.info("started", extra={"child": self.spec.name, "pid": self.pid})

    @property
    def pid(self) -> int | None:
        return None if self.popen is None else self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the whole group, SIGKILL after `timeout`; safe to call when dead."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.popen.wait()
        self._signal_group(signal.SIGKILL)  # what the process left behind (postgres backends)

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            assert self.popen is not None
            os.killpg(self.popen.pid, signum)


@dataclass
class Running:
    """A unit and its current processes."""

    unit: Unit
    policy: RestartPolicy
    processes: list[Process] = field(default_factory=list)
    restart_at: float | None = None
    restarts: int = 0

    def dead(self) -> bool:
        return bool(self.processes) and not all(p.alive() for p in self.processes)


class Supervisor:
    def __init__(self, top: Topology, clock: Any = time.monotonic) -> None:
        self.top = top
        self.settings = top.settings
        self.clock = clock
        self.env = child_environment(self.settings)
        self.running = {u.name: Running(u, RestartPolicy(clock)) for u in top.units}
        self.broken: Broken | None = None
        self._lock = threading.RLock()  # the watcher thread and `start` change the same units

    # ---- starting and stopping --------------------------------------------------------------

    def start(self, names: list[str]) -> None:
        with self._lock:
            for name in names:
                self._start(self.running[name])

    def _start(self, run: Running) -> None:
        unit = run.unit
        unit.prepare()
        run.processes = [
            Process(spec, self.env, self.settings.log_dir / f"{spec.name}.log")
            for spec in unit.build()
        ]
        for process in run.processes:
            process.start()
        run.policy.started()
        run.restart_at = None
        if unit.server:
            wait(unit.ready, unit.name, timeout=READY_TIMEOUT)
            if unit.name in (BROKER, LOGSTORE) and BROKER in self.running:
                self._check_broker_log()
        self.write_state()

    def _check_broker_log(self) -> None:
        """After the broker or its storage starts: topics, and the epoch of the log."""
        if not self.running[BROKER].processes:
            return  # not started yet: its own start checks
        if self.top.broker_ready():
            log.warning("the broker's log was lost: flows and gateway restart on new stores")
            for run in self.running.values():
                if not run.unit.server and run.processes:
                    self._stop(run)
                    self._start(run)

    def _stop(self, run: Running) -> None:
        for process in run.processes:
            process.stop()

    def stop_all(self) -> None:
        """Flows and gateway first, then the servers, each in reverse start order."""
        with self._lock:
            units = list(self.running.values())[::-1]
            servers_last = [r for r in units if not r.unit.server] + [
                r for r in units if r.unit.server
            ]
            for run in servers_last:
                self._stop(run)
            self.write_state()

    # ---- watching --------------------------------------------------------------------------

    def check(self) -> None:
        """One round: restart units whose process died, once their delay has passed."""
        now = self.clock()
        for run in self.running.values():
            if run.restart_at is None and run.dead():
                codes = [p.popen.poll() for p in run.processes if p.popen is not None]
                self._stop(run)
                delay = run.policy.died()
                if delay is None:
                    raise Broken(
                        f"{run.unit.name} keeps dying; see {self.settings.log_dir}/"
                        f"{run.unit.name}*.log"
                    )
                log.warning(
                    "child died; restarting",
                    extra={"unit": run.unit.name, "exit_codes": codes, "in_seconds": delay},
                )
                run.restart_at = now + delay
            elif run.restart_at is not None and now >= run.restart_at:
                run.restarts += 1
                try:
                    self._start(run)
                except (TimeoutError, OSError) as exc:  # counts as another death
                    log.error("restart failed", extra={"unit": run.unit.name, "error": str(exc)})
                    self._stop(run)

    def watch(self, stop: threading.Event, every: float = 0.2) -> threading.Thread:
        """Check every `every` seconds in a thread until `stop` is set; a unit that keeps
        dying sets `broken` and `stop`."""

        def loop() -> None:
            while not stop.wait(every):
                try:
                    with self._lock:
                        self.check()
                except Broken as exc:
                    self.broken = exc
                    stop.set()

        thread = threading.Thread(target=loop, name="supervisor", daemon=True)
        thread.start()
        return thread

    # ---- state --------------------------------------------------------------------------------

    def write_state(self) -> None:
        """What runs now, for `driftline status`, tests and people: `<home>/run/stack.json`."""
        state = {
            "supervisor": os.getpid(),
            "profile": self.settings.servers.profile,
            "log_epoch": self.top.log_epoch,
            "units": {
                name: {
                    "server": run.unit.server,
                    "restarts": run.restarts,
                    "processes": {p.spec.name: p.pid for p in run.processes if p.alive()},
                    "metrics": {
                        p.spec.name: p.spec.metrics for p in run.processes if p.spec.metrics
                    },
                }
                for name, run in self.running.items()
            },
        }
        path = state_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(path)


def state_file(settings: Settings) -> Path:
    return settings.home / "run" / "stack.json"


def read_state(settings: Settings) -> dict[str, Any] | None:
    """What the running `driftline up` wrote, if it is still running."""
    path = state_file(settings)
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    try:
        os.kill(int(state["supervisor"]), 0)
    except (ProcessLookupError, PermissionError):
        return None
    return state


# ---- the whole stack ---------------------------------------------------------------------------


def wait_ready(settings: Settings, timeout: float = 120.0) -> dict[str, object]:
    """Poll `GET /ready` until the gateway and the inference flow answer."""
    url = f"{settings.gateway_url}/ready"
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {"ready": False, "reason": "gateway not answering yet"}
    while time.monotonic() < deadline:
        try:
            status, body = http_get(url, timeout=5)
            last = json.loads(body)
            if status == 200:
                return last
        except OSError:  # not answering yet
            pass
        except ValueError:  # not the gateway's JSON: something else holds the port
            last = {"ready": False, "reason": f"{url} answered {status}, not JSON"}
        time.sleep(0.5)
    raise TimeoutError(f"stack not ready after {timeout:.0f}s: {last}")


def wait_lake(settings: Settings, timeout: float = 60.0) -> None:
    """Wait until the lake writer has created the lake and its tables: asked of `driftline
    sql`, so the supervisor itself never loads DuckDB."""
    query = f"SELECT 1 FROM {INFERENCES_WITH_FEEDBACK} LIMIT 0"
    deadline = time.monotonic() + timeout
    while True:
        found = subprocess.run(
            [sys.executable, "-m", "app.cli", "sql", query],
            env=child_environment(settings),
            capture_output=True,
            text=True,
        )
        if found.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the lake was not created in {timeout:.0f}s: {found.stderr}")
        time.sleep(0.5)


def ensure_champion(settings: Settings) -> None:
    """On a fresh machine, train the quick TF-IDF models (about a minute), so the default model
    and a second one for an experiment exist; `driftline train` adds the embedding models.

    In a child process (`driftline train --bootstrap`): training loads MLflow and scikit-learn,
    hundreds of MiB the supervisor would otherwise keep for as long as the stack runs."""
    subprocess.run(
        [sys.executable, "-m", "app.cli", "train", "--bootstrap"],
        env=child_environment(settings),
        check=True,
    )


def up(settings: Settings, servers_only: bool = False, out: IO[str] = sys.stdout) -> int:
    """Run the stack in the foreground until interrupted; returns the exit code."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    top = topology(settings)
    supervisor = Supervisor(top)
    servers = [u.name for u in top.units if u.server]
    try:
        supervisor.start(servers)
        if BROKER not in supervisor.running:
            top.broker_ready()  # an external broker: topics and epoch all the same
        print(f"Servers up: {', '.join(servers) or 'none (external)'}", file=out, flush=True)
        watcher = supervisor.watch(stop)  # from now on a server that dies is started again
        if not servers_only:
            ensure_champion(settings)
            supervisor.start([u.name for u in top.units if not u.server])
            wait_ready(settings)
            wait_lake(settings)
            print_banner(settings, out)
        watcher.join()
        if supervisor.broken is not None:
            print(f"driftline: {supervisor.broken}", file=sys.stderr)
            return 1
    finally:
        print("Stopping driftline...", file=out, flush=True)
        supervisor.stop_all()
        state_file(settings).unlink(missing_ok=True)
    return 0


def print_banner(settings: Settings, out: IO[str]) -> None:
    base = settings.gateway_url
    results = RESULTS.name(settings.kafka)
    status, body = http_get(f"{base}/experiments/{settings.ab.default_experiment}", timeout=10)
    arms = ", ".join(
        f"{arm['model']}{'@' + arm['alias'] if arm['alias'] else '/' + str(arm['version'])} "
        f"({arm['weight']:g})"
        for arm in (json.loads(body)["arms"] if status == 200 else ())
    )
    print(
        f"""
driftline is up ({settings.servers.profile} profile). Experiment \
{settings.ab.default_experiment!r} serves: {arms or "nothing yet"}.
  Score:     curl -X POST {base}/inference -H 'content-type: application/json' \\
                  -d '{{"data": "i love this"}}'
  Feedback:  curl -X PATCH {base}/inference -H 'content-type: application/json' \\
                  -d '{{"inference_id": "<id>", "feedback": 1.0}}'
  Dashboard: {base}/ui
  API docs:  {base}/docs
  Tail:      driftline kcat -C -t {results} -o beginning
  Query:     driftline sql "select * from inferences_with_feedback"
  Logs:      {settings.log_dir}/
  {api_access(settings)}
Ctrl-C stops everything.
""",
        file=out,
        flush=True,
    )


def api_access(settings: Settings) -> str:
    """The banner's line on API keys: whether the API is open, and what a key guards.

    >>> from driftline.settings import load
    >>> api_access(load({}))
    'API open: no DRIFTLINE_API_KEYS set (anyone on this machine may change experiments)'
    >>> api_access(load({}, api_keys="k" * 16))
    'API keys: 1 set, required to change experiments (Authorization: Bearer <key> or X-API-Key)'
    """
    gateway = settings.gateway
    if not gateway.keys:
        where = "on this machine" if gateway.loopback else f"who reaches {gateway.host}"
        return (
            f"API open: no {gateway.env_name('api_keys')} set "
            f"(anyone {where} may change experiments)"
        )
    guarded = "to change experiments"
    if gateway.api_keys_for_scoring:
        guarded += ", score and send feedback"
    return (
        f"API keys: {len(gateway.keys)} set, required {guarded} "
        "(Authorization: Bearer <key> or X-API-Key)"
    )
