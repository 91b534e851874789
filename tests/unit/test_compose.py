"""docker-compose.yml describes the cluster topology for real hosts, and is valid.

It is never started here (no Docker engine on these machines), so the test checks what it can:
Compose's own schema (`docker-compose config`, installed by `make install`), and that the file
runs every flow as a 2-process cluster with matching addresses, pins every image, gives every
server a health check, and sets only settings driftline knows.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from app.topology import FLOWS
from driftline import settings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The file as Compose reads it (anchors and merges resolved)."""
    docker_compose = shutil.which("docker-compose")
    assert docker_compose, "docker-compose is missing: `make install` installs it"
    run = subprocess.run(
        [docker_compose, "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return dict(yaml.safe_load(run.stdout))


def test_every_flow_runs_as_a_two_process_bytewax_cluster(resolved: dict) -> None:
    services = resolved["services"]
    for flow in FLOWS:
        commands = [services[f"{flow}-{i}"]["command"] for i in (0, 1)]
        addresses = {c[c.index("--addresses") + 1] for c in commands}
        assert addresses == {f"{flow}-0:2101;{flow}-1:2101"}
        assert [c[c.index("--process") + 1] for c in commands] == ["0", "1"]
        assert all(c[:3] == ["driftline", "flow", flow] for c in commands)


def test_servers_are_pinned_and_health_checked(resolved: dict) -> None:
    services = resolved["services"]
    for name in ("kafka-1", "kafka-2", "kafka-3", "postgres", "minio", "mlflow", "gateway"):
        assert "healthcheck" in services[name], name
    for name, service in services.items():
        image = service.get("image", "")
        assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), (name, image)
    assert services["gateway"]["deploy"]["replicas"] == 2


def test_every_driftline_variable_is_a_known_setting(resolved: dict) -> None:
    for service in resolved["services"].values():
        env = service.get("environment") or {}
        variables = {k: str(v) for k, v in env.items() if k.startswith("DRIFTLINE_")}
        if variables:
            settings.load(variables)  # raises, naming the variable, on anything wrong
