"""A/B experiments through the running stack: HTTP -> experiment store -> inference flow routing
-> feedback join -> A/B flow -> `monitoring.ab` (read with kcat) and the lake."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson
import pytest
from scipy.stats import binomtest

import lakehouse
from driftline.settings import Settings
from driftline.topics import AB, LABELED
from tests.integration.conftest import WITH_KEY, Stack, wait_until

pytestmark = pytest.mark.integration

MODEL = "sentiment_logreg_tfidf"
READ_ALL = ["-o", "beginning", "-e", "-q"]


def kcat_json(s: Settings, topic: str) -> list[dict]:
    """Every message on `topic`, read with `driftline kcat -C -o beginning -e` as a user would."""
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "kcat", "-C", "-t", topic, *READ_ALL],
        env=os.environ | s.to_env(),
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return [orjson.loads(line) for line in out.splitlines() if line.strip()]


def latest_report(s: Settings, experiment: str) -> dict | None:
    """The newest report of `experiment` on `monitoring.ab`, if there is one yet."""
    reports = [r for r in kcat_json(s, AB.name(s.kafka)) if r["experiment"] == experiment]
    return reports[-1] if reports else None


def second_version(s: Settings) -> str:
    """Register one more version of the served model (same artifacts), without an alias."""
    from models import registry

    client = registry.client(s)
    champion = client.get_model_version_by_alias(MODEL, s.models.default_alias)
    return str(client.create_model_version(MODEL, champion.source, champion.run_id).version)


@pytest.fixture(scope="module")
def split(live: Stack, client: httpx.Client) -> str:
    """Experiment `split`: the champion at weight 0.7, a pinned second version at 0.3."""
    version = second_version(live.settings)
    body = {
        "arms": [
            {"name": "A", "model": MODEL, "alias": "champion", "weight": 0.7},
            {"name": "B", "model": MODEL, "version": version, "weight": 0.3},
        ]
    }
    answer = client.put("/experiments/split", json=body)
    assert answer.status_code == 200, answer.text
    # The inference flow re-reads the store every few seconds: wait until it routes by it.
    wait_until(
        lambda: (
            client.post("/inference", json={"data": "hi", "experiment": "split"}).status_code == 200
        ),
        timeout=30,
    )
    return version


@pytest.fixture(scope="module")
def client(live: Stack) -> httpx.Client:
    with httpx.Client(base_url=live.url, timeout=30, headers=WITH_KEY) as http:
        yield http


def post(client: httpx.Client, body: dict) -> dict:
    """The answer to a `POST /inference`. A 504 says the result did not come within the
    gateway's timeout (a busy machine, a flow catching up after an earlier test's burst) and to
    fetch it later: that is done, for up to 3 minutes."""
    answer = client.post("/inference", json=body)
    if answer.status_code == 504:
        later = f"/inference/{answer.json()['inference_id']}"
        return wait_until(lambda: fetched(client, later), timeout=180, every=1.0)
    assert answer.status_code == 200, answer.text
    return answer.json()


def fetched(client: httpx.Client, path: str) -> dict | None:
    answer = client.get(path)
    assert answer.status_code in (200, 404, 503), answer.text  # 503: the lake is busy
    return answer.json() if answer.status_code == 200 else None


def test_two_arms_get_traffic_per_their_weights_and_subjects_stick(
    client: httpx.Client, split: str
) -> None:
    n = 300
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(lambda i: post(client, {"data": f"text {i}", "experiment": "split"}), range(n))
        )
    to_a = sum(a["arm"] == "A" for a in answers)
    assert {a["experiment"] for a in answers} == {"split"}
    assert {a["model"]["version"] for a in answers if a["arm"] == "B"} == {split}
    # Assignments without a subject are random: at 0.001 one run in a thousand fails by chance
    # (one CI run did: 236 of 300); 1e-6 still rejects a 50/50 split (p ~1e-13).
    assert binomtest(to_a, n, 0.7).pvalue > 1e-6, to_a
    for subject in ("alice", "bob", "carol"):
        body = {"data": "same user", "experiment": "split", "subject": subject}
        assert len({post(client, body)["arm"] for _ in range(5)}) == 1


def test_feedback_shows_up_labeled_in_monitoring_ab_and_in_the_lake(
    live: Stack, client: httpx.Client, split: str
) -> None:
    scored = [post(client, {"data": f"feedback {i}", "experiment": "split"}) for i in range(30)]
    for i, answer in enumerate(scored):
        feedback = {"inference_id": answer["inference_id"], "feedback": float(i % 2)}
        assert client.patch("/inference", json=feedback).status_code == 202
    ids = {a["inference_id"] for a in scored}

    def labeled() -> list[dict] | None:
        found = kcat_json(live.settings, LABELED.name(live.settings.kafka))
        found = [m for m in found if m["inference_id"] in ids]
        return found if {m["inference_id"] for m in found} == ids else None

    for message in wait_until(labeled, timeout=30):
        assert message["experiment"] == "split" and message["arm"] in ("A", "B")
        assert len(message["feedback"]) == 1

    def report() -> dict | None:
        last = latest_report(live.settings, "split")
        if last is None:
            return None
        return last if sum(a["feedback_count"] for a in last["arms"]) >= len(ids) else None

    last = wait_until(report, timeout=30)
    arms = {a["arm"]: a for a in last["arms"]}
    assert set(arms) == {"A", "B"}
    assert sum(a["share"] for a in arms.values()) == pytest.approx(1.0)
    assert last["test"]["arm_a"] in arms and last["test"]["decision"]

    def lake_rows() -> list[tuple] | None:
        con = lakehouse.connect(live.settings.lake, read_only=True)
        try:
            return con.execute(
                "SELECT test_decision, arms FROM ab_metrics WHERE experiment = 'split'"
            ).fetchall()
        finally:
            con.close()

    assert wait_until(lake_rows, timeout=30)


def test_experiments_are_listed_validated_and_unknown_ones_refused(
    live: Stack, client: httpx.Client, split: str
) -> None:
    listed = {e["name"]: e for e in client.get("/experiments").json()}
    assert [a["weight"] for a in listed["split"]["arms"]] == [0.7, 0.3]
    default = listed[live.settings.ab.default_experiment]
    assert default["arms"][0]["model"] == live.settings.models.default_model
    assert len(default["arms"]) in (1, 2)  # two once a second registered model exists

    bad = {"arms": [{"name": "A", "model": "no_such_model", "alias": "champion", "weight": 1}]}
    refused = client.put("/experiments/bad", json=bad)
    assert refused.status_code == 422 and "no_such_model" in refused.json()["detail"]
    missing = client.post("/inference", json={"data": "x", "experiment": "bad"})
    assert missing.status_code == 404

    explicit = post(client, {"data": "x", "models": [{"name": MODEL, "version": split}]})
    assert explicit["model"] == {"name": MODEL, "version": split}

    cli = subprocess.run(
        [sys.executable, "-m", "app.cli", "experiments", "list"],
        env=os.environ | live.settings.to_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert any(line.startswith("split\tfixed\tA=") for line in cli.splitlines())
