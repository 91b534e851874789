"""The factory each uvicorn worker calls settles the worker's heap (`driftline.heap`);
`create_app` alone leaves the process's collector as it was."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = """
import gc, json
from gateway import create_app, from_environment
from driftline import settings

create_app(settings.load())
alone = gc.get_freeze_count(), gc.get_threshold()[0]
from_environment()
settled = [gc.get_freeze_count() > 0, gc.get_threshold()[0]]
print(json.dumps({"create_app": alone, "from_environment": settled}))
"""


def test_only_the_worker_factory_settles_the_heap(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLINE_")}
    probe = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env | {"DRIFTLINE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert probe.returncode == 0, probe.stderr
    outcome = json.loads(probe.stdout.splitlines()[-1])
    assert outcome == {"create_app": [0, 700], "from_environment": [True, 20_000]}
