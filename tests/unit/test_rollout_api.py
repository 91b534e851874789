"""Rollout routes on a fake bridge: a declared ramp starts at its first step, is shown with its
decisions, and a person pauses, resumes or aborts it with an API key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftline import settings
from driftline.topics import RolloutCommand, RolloutDecision
from models.rollouts import RolloutLog
from tests.unit.gateway_fakes import call, fake_app
from tests.unit.test_auth import KEY

ARMS = [
    {"name": "A", "model": "m", "alias": "champion"},
    {"name": "B", "model": "m", "alias": "champion"},
]
RAMP = {"challenger": "B", "champion": "A", "steps": [0.1, 0.5, 1.0], "min_feedback": 5}
WITH_KEY = {"X-API-Key": KEY}


@pytest.fixture()
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return fake_app(tmp_path, monkeypatch, api_keys=KEY)


def put(app: Any, body: dict) -> Any:
    return call(app, "PUT", "/experiments/ramp", json=body, headers=WITH_KEY)


def test_a_declared_rollout_starts_at_its_first_step_with_a_fresh_id(app: Any) -> None:
    first = put(app, {"arms": ARMS, "rollout": RAMP})
    assert first.status_code == 200, first.text
    assert [a["weight"] for a in first.json()["arms"]] == [0.9, 0.1]
    again = put(app, {"arms": ARMS, "rollout": RAMP}).json()
    assert again["rollout"]["id"] and again["rollout"]["id"] != first.json()["rollout"]["id"]
    shown = call(app, "GET", "/experiments/ramp/rollout").json()
    assert (shown["status"], shown["step"], shown["challenger_share"]) == ("running", 0, 0.1)
    assert shown["decisions"] == []


@pytest.mark.parametrize(
    ("ramp", "reason"),
    [
        (RAMP | {"steps": [0.5, 0.2, 1.0]}, "rise strictly"),
        (RAMP | {"champion": "Z"}, "unknown arms"),
        (RAMP | {"margin": 0}, "margin"),
    ],
)
def test_a_bad_rollout_is_refused_with_the_reason(app: Any, ramp: dict, reason: str) -> None:
    refused = put(app, {"arms": ARMS, "rollout": ramp})
    assert refused.status_code == 422 and reason in refused.text


def test_commands_need_a_key_a_rollout_and_an_unfinished_one(app: Any, tmp_path: Path) -> None:
    put(app, {"arms": ARMS, "rollout": RAMP})
    path = "/experiments/ramp/rollout/pause"
    assert call(app, "POST", path).status_code == 401
    assert call(app, "POST", path, headers={"X-API-Key": "x" * 20}).status_code == 403
    accepted = call(app, "POST", path, headers=WITH_KEY)
    assert accepted.status_code == 202, accepted.text
    assert RolloutCommand.model_validate(accepted.json()).action == "pause"
    assert call(app, "POST", "/experiments/nope/rollout/abort", headers=WITH_KEY).status_code == 404
    assert call(app, "POST", "/experiments/ramp/rollout/stop", headers=WITH_KEY).status_code == 422

    put(app, {"arms": ARMS})
    no_ramp = call(app, "POST", path, headers=WITH_KEY)
    assert no_ramp.status_code == 409 and "no rollout" in no_ramp.json()["detail"]

    rollout = put(app, {"arms": ARMS, "rollout": RAMP}).json()["rollout"]
    RolloutLog.of(settings.load({}, home=tmp_path)).record(
        RolloutDecision(
            decision_id="d",
            experiment="ramp",
            rollout_id=rollout["id"],
            seq=0,
            kind="abort",
            status="aborted",
            step=0,
            challenger="B",
            champion="A",
            challenger_share=0.0,
            reason="",
            created_at="2026-11-29T12:00:00Z",
        )
    )
    finished = call(app, "POST", path, headers=WITH_KEY)
    assert finished.status_code == 409 and "aborted" in finished.json()["detail"]
    assert call(app, "GET", "/experiments/ramp/rollout").json()["status"] == "aborted"
