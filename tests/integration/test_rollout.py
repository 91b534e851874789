"""Rollouts through the running stack: PUT a ramp -> traffic and feedback -> feedback join ->
A/B flow (`monitoring.ab`) -> rollout flow -> decisions on `monitoring.rollout` (read with kcat),
weights in the experiment store (the inference flow routes by them), the `champion` alias in
MLflow, and rows in the lake's `rollouts` table.

Both arms serve the same artifacts (the champion and a second registered version of it), so
what makes one better is the feedback, by construction: every answer of the favoured arm gets
feedback equal to its label (reward 1), every answer of the other arm the opposite (reward 0).

The stack here has its alert rules out of reach: feedback crafted like this contradicts the
models' own estimates on purpose (and the texts are not tweets), so the monitor would alert on
the challenger, and an alert on the challenger rolls it back at once (tested in
`tests/unit/ab/test_rollout.py`); here the worse challenger is rolled back by the sequential test.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

import lakehouse
from driftline.topics import ROLLOUT
from models import registry
from tests.integration.conftest import (
    WITH_KEY,
    Stack,
    make_settings,
    trained_stack,
    wait_until,
)
from tests.integration.test_ab import MODEL, kcat_json, second_version

pytestmark = pytest.mark.integration

RAMP = {"challenger": "B", "champion": "A", "steps": [0.2, 0.5, 1.0], "margin": 0.05}
DEADLINE = 240.0


QUIET = {  # no alert can fire (see above)
    "alert_rule": "fixed",
    "alert_ks_d": 1.0,
    "alert_domain_auc": 1.0,
    "alert_f1_drop": 10.0,
    "alert_brier": 1.0,
    "monitor_contradiction_tolerance": 1.0,
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack of its own, with the alert rules out of reach: rollouts move the `champion`
    alias, which the other tests' stack serves."""
    with trained_stack(make_settings(tmp_path_factory.mktemp("rollout"), **QUIET)) as running:
        yield running


@pytest.fixture(scope="module")
def client(live: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30, headers=WITH_KEY) as http:
        yield http


@pytest.fixture(scope="module")
def challenger(live: Stack) -> str:
    """A second version of the served model, without an alias."""
    return second_version(live.settings)


def start(client: httpx.Client, name: str, version: str) -> str:
    body = {
        "arms": [
            {"name": "A", "model": MODEL, "alias": "champion"},
            {"name": "B", "model": MODEL, "version": version},
        ],
        "rollout": RAMP | {"min_feedback": 10},
    }
    stored = client.put(f"/experiments/{name}", json=body)
    assert stored.status_code == 200, stored.text
    assert [a["weight"] for a in stored.json()["arms"]] == [0.8, 0.2]
    return str(stored.json()["rollout"]["id"])


def traffic(client: httpx.Client, name: str, favoured: str, rng: random.Random) -> None:
    """40 texts through the experiment; feedback rewards the `favoured` arm's answers only."""
    items = [{"data": f"text {rng.random()}", "experiment": name} for _ in range(40)]
    answer = client.post("/inferences", json={"items": items})
    assert answer.status_code == 200, answer.text
    for item in answer.json()["results"]:
        if item["status"] != 200:
            continue  # the inference flow has not re-read the experiments yet
        result = item["result"]
        agree = result["arm"] == favoured
        score = float(result["label"] if agree else 1 - result["label"])
        body = {"inference_id": result["inference_id"], "feedback": score}
        assert client.patch("/inference", json=body).status_code == 202


def drive(client: httpx.Client, name: str, favoured: str, until: set[str]) -> dict:
    """Traffic and feedback until the rollout's status is one of `until`; its last state."""
    rng = random.Random(13)

    def finished() -> dict | None:
        state = client.get(f"/experiments/{name}/rollout").json()
        if state["status"] in until:
            return state
        traffic(client, name, favoured, rng)
        return None

    return wait_until(finished, timeout=DEADLINE, every=1.0)


def lake_kinds(live: Stack, rollout_id: str, count: int) -> list[str] | None:
    """The rollout's decision kinds in the lake, once there are `count` of them."""
    con = lakehouse.connect(live.settings.lake, read_only=True)
    try:
        rows = con.execute(
            "SELECT kind FROM rollouts WHERE rollout_id = ? ORDER BY seq", [rollout_id]
        ).fetchall()
    finally:
        con.close()
    return [kind for (kind,) in rows] if len(rows) >= count else None


def test_a_better_challenger_ramps_through_every_step_and_becomes_champion(
    live: Stack, client: httpx.Client, challenger: str
) -> None:
    rollout_id = start(client, "ramp-better", challenger)
    state = drive(client, "ramp-better", favoured="B", until={"completed", "rolled_back"})
    assert state["status"] == "completed", state
    decisions = state["decisions"]
    assert [(d["kind"], d["challenger_share"]) for d in decisions] == [
        ("advance", 0.5),
        ("complete", 1.0),
    ]
    assert all(d["ci_lower"] > -RAMP["margin"] for d in decisions)
    assert decisions[-1]["model"] == {"name": MODEL, "version": challenger}
    s = live.settings
    assert registry.alias_version(s, MODEL, s.models.default_alias) == challenger
    arms = {a["name"]: a for a in client.get("/experiments/ramp-better").json()["arms"]}
    assert arms["A"]["shadow"] and not arms["B"]["shadow"]

    def on_topic() -> list[dict] | None:
        found = [d for d in kcat_json(s, ROLLOUT.name(s.kafka)) if d["rollout_id"] == rollout_id]
        return found if len(found) >= 2 else None

    assert [d["kind"] for d in wait_until(on_topic, timeout=120)] == ["advance", "complete"]
    assert wait_until(lambda: lake_kinds(live, rollout_id, 2), timeout=120) == [
        "advance",
        "complete",
    ]


def test_a_worse_challenger_is_rolled_back_by_the_sequential_test(
    live: Stack, client: httpx.Client
) -> None:
    s = live.settings
    champion = registry.alias_version(s, MODEL, s.models.default_alias)
    # A version of its own: were the champion's version also the challenger's, its error stream
    # would mix both arms' (right and wrong) and the change detector would alert on it.
    rollout_id = start(client, "ramp-worse", second_version(s))
    state = drive(client, "ramp-worse", favoured="A", until={"completed", "rolled_back"})
    assert state["status"] == "rolled_back", state
    (decision,) = state["decisions"]
    assert decision["kind"] == "rollback" and decision["ci_upper"] < 0
    assert "worse" in decision["reason"]
    arms = {a["name"]: a for a in client.get("/experiments/ramp-worse").json()["arms"]}
    assert arms["B"]["shadow"] and not arms["A"]["shadow"]
    assert registry.alias_version(s, MODEL, s.models.default_alias) == champion
    assert wait_until(lambda: lake_kinds(live, rollout_id, 1), timeout=120) == ["rollback"]
    aborted = client.post("/experiments/ramp-worse/rollout/abort")
    assert aborted.status_code == 409  # finished


def cli(live: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "experiments", "rollout", *args],
        env=os.environ | live.settings.to_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_person_pauses_resumes_and_aborts_a_rollout(live: Stack, client: httpx.Client) -> None:
    """Pause and resume through the API, abort with the CLI."""
    rollout_id = start(client, "ramp-steered", "1")
    for action, status in (("pause", "paused"), ("resume", "running"), ("abort", "aborted")):
        if action == "abort":
            aborted = cli(live, "ramp-steered", "abort")
            assert aborted.returncode == 0, aborted.stderr
        else:
            sent = client.post(f"/experiments/ramp-steered/rollout/{action}")
            assert sent.status_code == 202, sent.text

        def reached(status: str = status) -> dict | None:
            state = client.get("/experiments/ramp-steered/rollout").json()
            return state if state["status"] == status else None

        wait_until(reached, timeout=120)
    assert wait_until(lambda: lake_kinds(live, rollout_id, 3), timeout=120) == [
        "pause",
        "resume",
        "abort",
    ]
    shown = cli(live, "ramp-steered", "show")
    assert shown.returncode == 0 and json.loads(shown.stdout)["status"] == "aborted"
    refused = cli(live, "ramp-steered", "resume")
    assert refused.returncode == 1 and "finished (aborted)" in refused.stderr
