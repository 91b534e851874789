"""Shadow arms through the running stack: HTTP -> experiment store -> inference flow (answering
arm and shadows in one batch) -> gateway (answers with the answering arm only) -> feedback
join -> A/B flow -> `monitoring.ab` (read with kcat) and the lake."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest
from playwright.sync_api import Page

import lakehouse
from driftline.ab import Experiment
from driftline.ab.shadow import samples, shadow_id
from tests.integration.conftest import PATIENCE, Stack, wait_until
from tests.integration.test_ab import latest_report

pytestmark = pytest.mark.integration

ANSWERING = "sentiment_logreg_tfidf"
OTHER = "sentiment_xgboost_tfidf"
EXPERIMENT = {
    "arms": [
        {"name": "A", "model": ANSWERING, "alias": "champion"},
        # Another model: it disagrees now and then.
        {"name": "S", "model": OTHER, "alias": "champion", "shadow": True},
        # The answering model itself on half of the requests: it must agree every time.
        {"name": "T", "model": ANSWERING, "alias": "champion", "shadow": True}
        | {"shadow_sample": 0.5},
    ]
}
TEXTS = ["i love this", "this is awful", "meh", "what a great day", "worst service ever"]


def lake(live: Stack, sql: str, params: list | None = None) -> list[tuple]:
    con = lakehouse.connect(live.settings.lake, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def test_a_shadow_arm_never_answers_and_its_agreement_and_reward_show_in_monitoring_ab(
    live: Stack, client: httpx.Client
) -> None:
    stored = client.put("/experiments/shadowed", json=EXPERIMENT)
    assert stored.status_code == 200, stored.text
    experiment = Experiment.model_validate(stored.json())
    answers: list[dict] = []

    def post(text: str) -> dict | None:
        answer = client.post("/inference", json={"data": text, "experiment": "shadowed"})
        if answer.status_code != 200:
            return None  # the inference flow has not re-read the experiments yet
        answers.append(answer.json())
        return answer.json()

    wait_until(lambda: post("warm up"), timeout=30)
    for i in range(40):
        assert post(f"{TEXTS[i % len(TEXTS)]} #{i}") is not None
    assert {(a["arm"], a["model"]["name"]) for a in answers} == {("A", ANSWERING)}
    feedback = {}
    for i, answer in enumerate(answers[-40:]):
        key = answer["inference_id"]
        feedback[key] = float(i % 3 == 0)
        sent = {"inference_id": key, "feedback": feedback[key]}
        assert client.patch("/inference", json=sent).status_code == 202

    # Which shadows scored what: every request for S, a stable half for T.
    answered = {uuid.UUID(a["inference_id"]): a["label"] for a in answers}
    expected = {
        arm.name: {i for i in answered if samples(experiment, arm, i)} for arm in experiment.shadows
    }
    assert len(expected["S"]) == len(answered) and 0 < len(expected["T"]) < len(answered)

    def shadow_rows() -> dict[uuid.UUID, tuple[str, int, uuid.UUID]] | None:
        rows = lake(
            live,
            "SELECT inference_id, arm, label, shadow_of FROM inferences "
            "WHERE experiment = 'shadowed' AND shadow_of IS NOT NULL",
        )
        found = {r[0]: (r[1], r[2], r[3]) for r in rows}
        return found if len(found) == sum(len(ids) for ids in expected.values()) else None

    stored_shadows = wait_until(shadow_rows, timeout=60)
    for arm, ids in expected.items():
        mine = {k: v for k, v in stored_shadows.items() if v[0] == arm}
        assert {v[2] for v in mine.values()} == ids
        assert set(mine) == {shadow_id(i, arm) for i in ids}
    # Its answer is never returned, not even to someone who guesses its id.
    some_shadow = next(iter(stored_shadows))
    assert client.get(f"/inference/{some_shadow}").status_code == 404

    # What monitoring.ab must say, computed here from the answers, the lake and the feedback.
    def oracle(arm: str) -> dict:
        pairs = [(v[1], answered[v[2]]) for v in stored_shadows.values() if v[0] == arm]
        scored = [
            (v[1], answered[v[2]], feedback[str(v[2])])
            for v in stored_shadows.values()
            if v[0] == arm and str(v[2]) in feedback
        ]
        shadow = sum(1 - abs(s - f) for s, _, f in scored) / len(scored)
        mine = sum(1 - abs(a - f) for _, a, f in scored) / len(scored)
        return {
            "scored": len(pairs),
            "paired": len(pairs),
            "agreement": sum(s == a for s, a in pairs) / len(pairs),
            "feedback_count": len(scored),
            "mean_reward": shadow,
            "answered_mean_reward": mine,
            "reward_difference": shadow - mine,
        }

    wanted = {arm: oracle(arm) for arm in expected}
    assert wanted["T"]["agreement"] == 1.0 and wanted["T"]["reward_difference"] == 0.0

    def report() -> dict | None:
        last = latest_report(live.settings, "shadowed")
        if last is None:
            return None
        shadows = {s["arm"]: s for s in last.get("shadows", [])}
        counts = {
            arm: (s["paired"], s["feedback_count"]) for arm, s in shadows.items() if arm in wanted
        }
        done = {arm: (w["paired"], w["feedback_count"]) for arm, w in wanted.items()}
        return last if counts == done and last["arms"][0]["feedback_count"] == 40 else None

    last = wait_until(report, timeout=60)
    # Shadows are not the experiment's traffic: one arm, every answered request, no test.
    assert [(a["arm"], a["traffic"], a["share"]) for a in last["arms"]] == [
        ("A", len(answered), 1.0)
    ]
    assert last["test"] is None
    for shadow in last["shadows"]:
        assert shadow["model"]["name"] == (OTHER if shadow["arm"] == "S" else ANSWERING)
        for field, value in wanted[shadow["arm"]].items():
            assert shadow[field] == pytest.approx(value), (shadow["arm"], field)

    def stored_report() -> list[tuple] | None:
        return lake(
            live,
            "SELECT shadows FROM ab_metrics WHERE experiment = 'shadowed' "
            "AND json_array_length(shadows) = 2",
        )

    assert wait_until(stored_report, timeout=60)


def test_shadow_arms_from_the_command_line_and_an_experiment_of_shadows_only_refused(
    live: Stack, client: httpx.Client
) -> None:
    cli = [sys.executable, "-m", "app.cli", "experiments"]
    env = os.environ | live.settings.to_env()
    put = [
        *cli,
        "put",
        "cli-shadowed",
        "--arm",
        f"A={ANSWERING}@champion",
        "--shadow",
        f"S={OTHER}@champion:0.25",
    ]
    subprocess.run(put, env=env, capture_output=True, check=True, timeout=120)
    (shadow,) = [a for a in client.get("/experiments/cli-shadowed").json()["arms"] if a["shadow"]]
    assert (shadow["name"], shadow["model"], shadow["shadow_sample"]) == ("S", OTHER, 0.25)
    listed = subprocess.run(
        [*cli, "list"], env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert f"cli-shadowed\tfixed\tA={ANSWERING}@champion:1, S={OTHER}@champion:shadow 0.25" in (
        listed.splitlines()
    )

    only = {"arms": [{"name": "S", "model": OTHER, "alias": "champion", "shadow": True}]}
    refused = client.put("/experiments/shadows-only", json=only)
    assert refused.status_code == 422
    assert "needs an arm that is not a shadow" in refused.json()["detail"]


def test_the_dashboard_charts_a_shadow_arms_agreement_and_reward(
    live: Stack, client: httpx.Client, page: Page
) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live.url}/ui")
    page.wait_for_selector("#live.on", timeout=PATIENCE * 30_000)
    arms = [EXPERIMENT["arms"][0], EXPERIMENT["arms"][1]]
    assert client.put("/experiments/charted", json={"arms": arms}).status_code == 200

    def post() -> str | None:
        answer = client.post("/inference", json={"data": "so good", "experiment": "charted"})
        return answer.json()["inference_id"] if answer.status_code == 200 else None

    first = wait_until(post, timeout=30)
    for inference_id in [first, *(wait_until(post) for _ in range(4))]:
        sent = {"inference_id": inference_id, "feedback": 1.0}
        assert client.patch("/inference", json=sent).status_code == 202
    for chart in ("shadow_agreement", "shadow_reward"):
        selector = f"[data-experiment=charted] svg[data-chart={chart}]"
        page.wait_for_function(
            f"document.querySelector('{selector}')?.dataset.points > 0", timeout=PATIENCE * 60_000
        )
    assert not errors, errors
