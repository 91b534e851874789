"""Importing a flow module, or building its dataflow, touches nothing outside the process.

Bytewax runs a flow as `python -m bytewax.run flows.<name>:flow`, calling the `flow()` factory;
pytest imports every module to collect doctests. Neither may create the lake, open a broker
connection or write a file: that happens when the dataflow runs. Nor may it import pandas:
a flow keeps it out (`driftline.imports.keep_out`) in its factory, so the import before it must
not have loaded it already. And each factory ends by settling the heap (`driftline.heap`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FLOWS = ("ab", "feedback", "inference", "lakewriter", "monitor", "rollout")

PROBE = """
import gc, json, socket, sqlite3, sys
import duckdb

calls = []

def refuse(name):
    def call(*args, **kwargs):
        calls.append(name)
        raise RuntimeError(f"{name} called while importing or building a flow")
    return call

socket.socket.connect = refuse("socket.connect")
duckdb.connect = refuse("duckdb.connect")
sqlite3.connect = refuse("sqlite3.connect")

from bytewax.run import _locate_dataflow  # what `python -m bytewax.run flows.X:flow` calls

built = type(_locate_dataflow(f"flows.{sys.argv[1]}", "flow")).__name__
settled = gc.get_freeze_count() > 0  # the factory froze its start-up heap (driftline.heap)
pandas = "pandas" in sys.modules
print(json.dumps({"calls": calls, "built": built, "pandas": pandas, "settled": settled}))
"""


def test_importing_and_building_every_flow_opens_nothing_and_writes_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    probes = {  # one process per flow, as they run
        name: subprocess.Popen(
            [sys.executable, "-c", PROBE, name],
            cwd=tmp_path,
            env=env | {"DRIFTLINE_HOME": str(home)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in FLOWS
    }
    for name, probe in probes.items():
        out, err = probe.communicate(timeout=180)
        assert probe.returncode == 0, err
        outcome = json.loads(out.splitlines()[-1])
        assert outcome == {"calls": [], "built": "Dataflow", "pandas": False, "settled": True}, name
    assert list(tmp_path.iterdir()) == []  # no lake, no store, no log folder
