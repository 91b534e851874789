"""The gateway's contract through the running stack: API keys on what changes state, the errors
it documents, and schemathesis fuzzing its OpenAPI document with every check.

The fuzzing run is schemathesis's own CLI (`schemathesis run`, installed with the dev extras),
with `tests/integration/schemathesis.toml`: every phase (examples, coverage, fuzzing, stateful),
every check, a fixed seed and a bounded number of cases, so it is the same run every time (about
800 requests in 40 s here). The README shows the same command by hand with more cases.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import API_KEY, WITH_KEY, Stack

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("schemathesis.toml")
SEED = 20261129
MAX_EXAMPLES = 30
ARM = {"name": "A", "model": "sentiment_logreg_tfidf", "alias": "champion", "weight": 1}
IDLE_SECONDS = 6.5
"""Longer than uvicorn's default keep-alive (5 s)."""


def schemathesis(live: Stack, max_examples: int = MAX_EXAMPLES) -> list[str]:
    """The command that fuzzes the stack's gateway: every check and phase, a fixed seed."""
    return [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "run",
        f"{live.url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(max_examples),
        "--workers",
        "1",  # one request at a time: the same sequence every run
        "--generation-database",
        "none",  # nothing carried over from an earlier run
        "--request-timeout",
        "30",
        "--header",
        f"X-API-Key: {API_KEY}",
        "--no-color",
    ]


def test_schemathesis_finds_no_server_error_and_no_contract_violation(
    live: Stack, tmp_path: Path
) -> None:
    run = subprocess.run(
        schemathesis(live),
        cwd=tmp_path,  # its report folder and caches stay out of the tree
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-20_000:]
    summary = out[out.rfind("SUMMARY") :]
    print(summary)  # phases, cases and warnings: `pytest -s` shows them
    for phase in ("Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, summary
    cases = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert cases is not None and int(cases[1]) == int(cases[2]) >= 300, summary


def test_changing_an_experiment_needs_a_valid_key(live: Stack) -> None:
    body = {"arms": [ARM]}
    name = f"keyed-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=live.url, timeout=30) as http:
        missing = http.put(f"/experiments/{name}", json=body)
        assert missing.status_code == 401, missing.text
        assert missing.headers["www-authenticate"].startswith("Bearer")
        wrong = http.put(f"/experiments/{name}", json=body, headers={"X-API-Key": "x" * 20})
        assert wrong.status_code == 403, wrong.text
        assert API_KEY not in wrong.text and "x" * 20 not in wrong.text
        assert http.get(f"/experiments/{name}").status_code == 404  # nothing was stored
        bearer = {"Authorization": f"Bearer {API_KEY}"}
        stored = http.put(f"/experiments/{name}", json=body, headers=bearer)
        assert stored.status_code == 200, stored.text
        assert http.get(f"/experiments/{name}").json()["arms"][0]["model"] == ARM["model"]
        assert http.delete(f"/experiments/{name}").status_code == 401
        assert http.delete(f"/experiments/{name}", headers=WITH_KEY).status_code == 204
        assert http.get(f"/experiments/{name}").status_code == 404
        # Scoring and feedback stay open unless DRIFTLINE_API_KEYS_FOR_SCORING is set.
        assert http.post("/inference", json={"data": "no key needed"}).status_code == 200


def test_the_default_experiment_is_read_without_being_written_and_not_deleted(
    live: Stack, client: httpx.Client
) -> None:
    from models.experiments import ExperimentStore

    name = live.settings.ab.default_experiment
    refused = client.delete(f"/experiments/{name}")
    assert refused.status_code == 409 and "PUT" in refused.json()["detail"]
    assert client.get(f"/experiments/{name}").status_code == 200
    stored = ExperimentStore.of(live.settings).get(name)
    listed = client.get(f"/experiments/{name}").json()
    if stored is not None:  # stored by the inference flow once it has two arms
        assert stored.model_dump(mode="json") == listed


def test_unknown_models_and_bad_types_are_client_errors(client: httpx.Client) -> None:
    unknown = client.post(
        "/inference", json={"data": "x", "models": [{"name": "no_such_model", "version": "1"}]}
    )
    assert unknown.status_code == 422, unknown.text
    assert "no_such_model" in unknown.json()["detail"]
    some_id = str(uuid.uuid4())
    boolean = client.patch("/inference", json={"inference_id": some_id, "feedback": False})
    assert boolean.status_code == 422
    assert boolean.json()["errors"][0]["loc"] == ["body", "feedback"]
    integer = client.patch("/inference", json={"inference_id": some_id, "feedback": 1})
    assert integer.status_code == 202


def test_errors_carry_the_request_id_and_bodies_are_bounded(
    live: Stack, client: httpx.Client
) -> None:
    answer = client.get(f"/inference/{uuid.uuid4()}", headers={"X-Request-ID": "trace-42"})
    assert answer.status_code == 404
    assert answer.headers["x-request-id"] == "trace-42"
    assert answer.json()["request_id"] == "trace-42"
    made = client.get("/health").headers["x-request-id"]
    assert len(made) == 32
    limit = live.settings.gateway.max_body_bytes
    big = client.post("/inference", json={"data": "x" * (limit + 1)})
    assert big.status_code == 413 and str(limit) in big.json()["detail"]
    options = client.options("/inference")
    assert options.status_code == 204
    assert set(options.headers["allow"].split(", ")) == {"POST", "PATCH"}


def test_the_gateway_keeps_an_idle_connection_open_longer_than_uvicorns_default(
    live: Stack,
) -> None:
    """A client that pauses between requests reuses its connection: the gateway keeps idle
    keep-alive connections `DRIFTLINE_GATEWAY_KEEP_ALIVE_SECONDS` (75), not uvicorn's 5. A
    server that closes first races the client's next request (with 5 s, the second request here
    fails with `RemoteDisconnected`; wrk, in `bench.harness.poisson`, then ran two chains of
    requests on the connection it reopened). The pause is what is tested, not a wait."""
    assert live.settings.gateway.keep_alive_seconds > IDLE_SECONDS
    host, port = live.url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", "/health")
        assert connection.getresponse().read() and connection.sock is not None
        opened = connection.sock
        time.sleep(IDLE_SECONDS)
        connection.request("GET", "/health")
        answer = connection.getresponse()
        answer.read()
        assert answer.status == 200 and connection.sock is opened
    finally:
        connection.close()
