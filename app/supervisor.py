"""Run the parts of driftline as local processes: the flows, the gateway, the whole stack.

Each flow runs as `python -m bytewax.run flows.<name>:flow` with Bytewax recovery on, its
recovery store under `<home>/recovery/<broker epoch>/<name>`, so a killed flow resumes where its
last snapshot left it. `up` starts the broker, trains a champion if there is none, starts every
flow and the gateway as children, restarts a child that dies, and stops them all on Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from broker import embedded
from driftline.settings import Settings
from driftline.tables import INFERENCES_WITH_FEEDBACK
from driftline.topics import RESULTS

log = logging.getLogger(__name__)

FLOWS = ("inference", "lakewriter", "feedback", "ab", "monitor")
RESTART_LIMIT = 5


def recovery_dir(settings: Settings, flow_name: str) -> Path:
    """The flow's recovery store for the current broker epoch, created on first use."""
    from bytewax.recovery import init_db_dir

    path = settings.recovery_root / embedded.epoch(settings) / flow_name
    if not path.exists():
        path.mkdir(parents=True)
        init_db_dir(path, 1)
    return path


def flow_command(settings: Settings, flow_name: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run one flow with recovery on."""
    env = os.environ | {
        "BYTEWAX_RECOVERY_DIRECTORY": str(recovery_dir(settings, flow_name)),
        "BYTEWAX_SNAPSHOT_INTERVAL": f"{settings.flows.snapshot_seconds:g}",
        "BYTEWAX_RECOVERY_BACKUP_INTERVAL": "0",
    }
    return [sys.executable, "-m", "bytewax.run", f"flows.{flow_name}:flow"], env


def _terminate_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies, so a `kill -9`
    of `up` leaves no flow or gateway running on its own. Elsewhere a no-op."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_file: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as sink:
            # A session of its own: Ctrl-C reaches `up` only, which then stops children in order.
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_terminate_with_parent,
            )
        log.info(
            "started", extra={"child": self.name, "pid": self.proc.pid, "log": str(self.log_file)}
        )

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def children(settings: Settings) -> list[Child]:
    logs = settings.log_dir
    out = []
    for name in FLOWS:
        argv, env = flow_command(settings, name)
        out.append(Child(name, argv, env, logs / f"{name}.log"))
    gateway = [sys.executable, "-m", "app.cli", "gateway"]
    out.append(Child("gateway", gateway, dict(os.environ), logs / "gateway.log"))
    return out


def wait_ready(settings: Settings, timeout: float = 120.0) -> dict[str, object]:
    """Poll `GET /ready` until the gateway and the inference flow answer."""
    url = f"{settings.gateway_url}/ready"
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {"ready": False, "reason": "gateway not answering yet"}
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, timeout=5)
            last = response.json()
            if response.status_code == 200:
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"stack not ready after {timeout:.0f}s: {last}")


def wait_lake(settings: Settings, timeout: float = 60.0) -> None:
    """Wait until the lake writer has created the lake and its tables."""
    import lakehouse

    deadline = time.monotonic() + timeout
    while True:
        try:
            con = lakehouse.connect(settings.lake, read_only=True)
            con.execute(f"SELECT 1 FROM {INFERENCES_WITH_FEEDBACK} LIMIT 0")
            con.close()
            return
        except Exception as exc:  # not created yet: DuckDB raises several kinds here
            if time.monotonic() > deadline:
                raise TimeoutError(f"the lake was not created in {timeout:.0f}s: {exc}") from exc
            time.sleep(0.5)


def ensure_champion(settings: Settings) -> None:
    """On a fresh machine, train the quick TF-IDF models (about a minute), so the default model
    and a second one for an experiment exist; `driftline train` adds the embedding models."""
    from models import registry, train

    served, alias = settings.models.default_model, settings.models.default_alias
    if registry.alias_version(settings, served, alias) is None:
        quick = sorted({served, *train.QUICK})
        print(f"No {served}@{alias} yet: training {quick}...")
        for trained in train.train(settings, only=quick):
            print(f"Registered {trained.name} v{trained.version} in {trained.seconds:.0f}s")


def up(settings: Settings) -> int:
    """Run the stack in the foreground until interrupted; returns the exit code."""
    state = embedded.start(settings)
    print(f"Broker: {settings.kafka.brokers} ({'tansu, managed' if state else 'external'})")
    ensure_champion(settings)
    procs = children(settings)
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        for child in procs:
            child.start()
        wait_ready(settings)
        wait_lake(settings)
        print_banner(settings)
        while not stopping:
            for child in procs:
                if child.proc is not None and child.proc.poll() is not None:
                    if child.restarts >= RESTART_LIMIT:
                        print(f"{child.name} keeps failing; see {child.log_file}", file=sys.stderr)
                        return 1
                    log.warning("child exited; restarting", extra={"child": child.name})
                    child.restarts += 1
                    child.start()
            time.sleep(0.5)
    finally:
        print("Stopping driftline...")
        for child in reversed(procs):
            child.stop()
        if state is not None:
            embedded.stop(settings)
    return 0


def print_banner(settings: Settings) -> None:
    from models.experiments import ExperimentStore, current

    base = settings.gateway_url
    results = RESULTS.name(settings.kafka)
    default = current(settings, ExperimentStore.of(settings)).get(settings.ab.default_experiment)
    arms = ", ".join(
        f"{arm.model}{'@' + arm.alias if arm.alias else '/' + str(arm.version)} ({arm.weight:g})"
        for arm in (default.arms if default else ())
    )
    print(
        f"""
driftline is up. Experiment {settings.ab.default_experiment!r} serves: {arms or "nothing yet"}.
  Score:     curl -X POST {base}/inference -H 'content-type: application/json' \\
                  -d '{{"data": "i love this"}}'
  Feedback:  curl -X PATCH {base}/inference -H 'content-type: application/json' \\
                  -d '{{"inference_id": "<id>", "feedback": 1.0}}'
  API docs:  {base}/docs
  Tail:      driftline kcat -C -t {results} -o beginning
  Query:     driftline sql "select * from inferences_with_feedback"
  Logs:      {settings.log_dir}/
Ctrl-C stops everything.
""",
        flush=True,
    )
