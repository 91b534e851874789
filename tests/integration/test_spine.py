"""The spine end to end: HTTP -> Kafka -> Bytewax -> MLflow model -> Kafka -> HTTP and DuckLake."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import duckdb
import httpx
import pytest
from confluent_kafka import Message, Producer

import lakehouse
from broker.clients import consumer_config, producer_config
from driftline.settings import Settings
from driftline.topics import (
    DEADLETTER,
    FEEDBACK,
    REQUESTS,
    RESULTS,
    DeadLetter,
    decode,
)
from models import registry
from tests.factories import make_feedback, make_result
from tests.integration.conftest import Stack, read_to_end, wait_until

pytestmark = pytest.mark.integration


def lake_rows(s: Settings, sql: str, params: list | None = None) -> list[tuple]:
    """Query the lake from a fresh read-only connection, as a second process would. Right after
    a kill -9 of the lake writer its SQLite catalog can hold a hot journal that only a writer may
    roll back ("attempt to write a readonly database"): the reader waits for the restarted one."""
    deadline = time.monotonic() + 60
    while True:
        try:
            con = lakehouse.connect(s.lake, read_only=True)
            break
        except duckdb.Error as error:
            if "readonly database" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def read_messages(s: Settings, topic: str) -> list[Message]:
    """Every message on `topic` up to its end when called."""
    return read_to_end(consumer_config(s, "tests"), topic)


def read_topic(s: Settings, topic: str) -> list[bytes]:
    """The values of every message on `topic` so far."""
    return [msg.value() for msg in read_messages(s, topic)]


def default_arms(client: httpx.Client) -> set[str]:
    """Models of the default experiment: the served one, and a second once one is registered."""
    return {arm["model"] for arm in client.get("/experiments/default").json()["arms"]}


def test_post_scores_with_the_registered_champion(live: Stack, client: httpx.Client) -> None:
    response = client.post("/inference", json={"data": "i love this"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] in default_arms(client)
    assert body["experiment"] == "default" and body["arm"] == body["model"]["name"]
    champion = registry.alias_version(live.settings, body["model"]["name"], "champion")
    assert body["model"]["version"] == champion
    assert 0.0 <= body["prediction"] <= 1.0
    assert body["label"] == int(body["prediction"] >= 0.5)
    uuid.UUID(body["inference_id"])
    assert body["created_at"].endswith("Z")


def test_post_then_feedback_round_trips_to_the_lake(live: Stack, client: httpx.Client) -> None:
    scored = client.post("/inference", json={"data": "worst service ever", "subject": "u1"})
    inference_id = scored.json()["inference_id"]
    for score in (0.0, 1.0, 0.0):
        answer = client.patch("/inference", json={"inference_id": inference_id, "feedback": score})
        assert answer.status_code == 202, answer.text

    def row() -> tuple | None:
        rows = lake_rows(
            live.settings,
            "SELECT data, subject, prediction, model_name, feedback "
            "FROM inferences_with_feedback WHERE inference_id = ?",
            [inference_id],
        )
        return rows[0] if rows and len(rows[0][4]) == 3 else None

    data, subject, prediction, model_name, feedback = wait_until(row, timeout=20)
    assert (data, subject) == ("worst service ever", "u1")
    assert model_name in default_arms(client)
    assert prediction == pytest.approx(scored.json()["prediction"])
    assert sorted(feedback) == [0.0, 0.0, 1.0]


def test_result_can_be_fetched_again_and_unknown_ids_are_404(client: httpx.Client) -> None:
    scored = client.post("/inference", json={"data": "great stuff"}).json()
    again = client.get(f"/inference/{scored['inference_id']}")
    assert again.status_code == 200
    assert again.json() == scored
    missing = client.get(f"/inference/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert "no result" in missing.json()["detail"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({}, "Field required"),
        ({"data": ""}, "at least 1 character"),
        ({"data": 42}, "valid string"),
        ({"data": "x", "unexpected": 1}, "Extra inputs"),
        ({"data": "x", "log_to_lakehouse": "maybe"}, "valid boolean"),
        ({"data": "x", "created_at": "2026-01-01T00:00:00"}, "must carry a timezone"),
        ({"data": "x", "created_at": "2999-01-01T00:00:00Z"}, "in the future"),
    ],
)
def test_malformed_inference_bodies_get_422_with_reason(
    client: httpx.Client, body: dict, reason: str
) -> None:
    response = client.post("/inference", json=body)
    assert response.status_code == 422
    assert reason in response.text


@pytest.mark.parametrize(
    "body",
    [
        {"inference_id": "not-a-uuid", "feedback": 1.0},
        {"inference_id": str(uuid.uuid4()), "feedback": 1.5},
        {"inference_id": str(uuid.uuid4())},
    ],
)
def test_malformed_feedback_gets_422(client: httpx.Client, body: dict) -> None:
    assert client.patch("/inference", json=body).status_code == 422


def test_non_json_body_gets_422(client: httpx.Client) -> None:
    response = client.post(
        "/inference", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_bad_message_on_requests_topic_goes_to_deadletter_and_flow_keeps_scoring(
    live: Stack, client: httpx.Client
) -> None:
    s = live.settings
    marker = uuid.uuid4().hex
    producer = Producer(producer_config(s))
    broken_bytes = b"{broken json " + marker.encode()
    producer.produce(REQUESTS.name(s.kafka), key=marker.encode(), value=broken_bytes)
    producer.produce(REQUESTS.name(s.kafka), key=marker.encode(), value=b'{"data": "no id"}')
    producer.flush(5)

    def letters() -> list[DeadLetter] | None:
        found = [decode(DeadLetter, v) for v in read_topic(s, DEADLETTER.name(s.kafka))]
        mine = [d for d in found if d.key == marker]
        return mine if len(mine) == 2 else None

    broken, invalid = sorted(wait_until(letters, timeout=20), key=lambda d: d.offset or 0)
    assert broken.flow == "inference" and broken.source_topic == REQUESTS.name(s.kafka)
    assert broken.reason.startswith("not JSON")
    assert broken.payload() == broken_bytes
    assert "inference_id: Field required" in invalid.reason
    # ... and the flow is still scoring.
    assert client.post("/inference", json={"data": "still alive?"}).status_code == 200


def test_feedback_that_arrives_before_its_inference_is_not_lost(live: Stack) -> None:
    s = live.settings
    inference_id = uuid.uuid4()
    producer = Producer(producer_config(s))
    early = make_feedback(inference_id, 1.0)
    producer.produce(FEEDBACK.name(s.kafka), key=str(inference_id), value=early.to_json())
    producer.flush(5)
    wait_until(
        lambda: lake_rows(s, "SELECT 1 FROM feedback WHERE inference_id = ?", [str(inference_id)])
    )
    producer.produce(
        RESULTS.name(s.kafka),
        key=str(inference_id),
        value=make_result(inference_id=inference_id, data="late").to_json(),
    )
    producer.flush(5)
    rows = wait_until(
        lambda: lake_rows(
            s,
            "SELECT feedback FROM inferences_with_feedback WHERE inference_id = ?",
            [str(inference_id)],
        )
    )
    assert rows == [([1.0],)]


@pytest.mark.slow
def test_kill_9_of_the_lake_writer_mid_stream_loses_and_duplicates_nothing(live: Stack) -> None:
    s = live.settings
    batch = uuid.uuid4().hex
    ids = [uuid.uuid4() for _ in range(3000)]
    producer = Producer(producer_config(s))
    killed = 0
    for i, inference_id in enumerate(ids):
        producer.produce(
            RESULTS.name(s.kafka),
            key=str(inference_id),
            value=make_result(inference_id=inference_id, data=batch).to_json(),
        )
        if i % 100 == 99:
            producer.flush(5)
        if i == len(ids) // 2:
            # Once some of this stream is committed, kill the writer without warning.
            wait_until(
                lambda: (
                    lake_rows(s, "SELECT count(*) FROM inferences WHERE data = ?", [batch])[0][0]
                    > 0
                ),
                timeout=20,
                every=0.05,
            )
            killed = live.kill("lakewriter")
    producer.flush(5)
    assert killed
    live.wait_restarted("lakewriter", killed)  # the supervisor starts it again

    def complete() -> tuple | None:
        row = lake_rows(
            s,
            "SELECT count(*), count(DISTINCT inference_id) FROM inferences WHERE data = ?",
            [batch],
        )[0]
        return row if row[0] >= len(ids) else None

    wait_until(complete, timeout=60)
    # A replay still in flight would show up within a few batch intervals: look again after.
    time.sleep(10 * s.lake.batch_seconds)
    total, distinct = lake_rows(
        s, "SELECT count(*), count(DISTINCT inference_id) FROM inferences WHERE data = ?", [batch]
    )[0]
    assert (total, distinct) == (len(ids), len(ids))


def test_sql_cli_reads_the_lake_while_the_writer_runs(live: Stack, client: httpx.Client) -> None:
    writer = live.pids("lakewriter")
    inference_id = client.post("/inference", json={"data": "query me"}).json()["inference_id"]
    env = os.environ | {"DRIFTLINE_HOME": str(live.settings.home)}
    query = f"select * from inferences_with_feedback where inference_id = '{inference_id}'"

    def shown() -> str | None:
        out = subprocess.run(
            [sys.executable, "-m", "app.cli", "sql", query],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return out.stdout if inference_id in out.stdout else None

    table = wait_until(shown, timeout=30, every=1.0)
    assert "query me" in table
    assert live.pids("lakewriter") == writer  # the writer kept running


def test_kcat_tails_the_results_topic(live: Stack, client: httpx.Client) -> None:
    inference_id = client.post("/inference", json={"data": "tail me"}).json()["inference_id"]
    topic = RESULTS.name(live.settings.kafka)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "kcat",
            "-b",
            live.settings.kafka.brokers,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        env=os.environ | {"DRIFTLINE_HOME": str(live.settings.home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert inference_id in out.stdout


def test_health_and_ready(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["inference_flow"] is True


def test_a_batch_scores_each_text_like_a_single_request(live: Stack, client: httpx.Client) -> None:
    tag = uuid.uuid4().hex
    items = [
        {"data": f"{tag} first", "subject": "user-1"},
        {"data": f"{tag} lost", "experiment": "no-such-experiment"},
        {"data": f"{tag} third", "log_to_lakehouse": True},
    ]
    answer = client.post("/inferences", json={"items": items})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [200, 404, 200]  # one failure fails only itself
    assert "no-such-experiment" in results[1]["detail"] and results[1]["result"] is None
    scored = {r["inference_id"] for r in results if r["status"] == 200}
    assert all(r["result"]["inference_id"] == r["inference_id"] for r in results[::2])

    def in_lake() -> set[str] | None:
        rows = lake_rows(
            live.settings, "SELECT inference_id FROM inferences WHERE data LIKE ?", [f"{tag}%"]
        )
        found = {str(r[0]) for r in rows}
        return found if found >= scored else None

    assert wait_until(in_lake, timeout=30) == scored


def test_a_batch_is_bounded(client: httpx.Client) -> None:
    too_many = [{"data": "x"}] * 1001
    assert client.post("/inferences", json={"items": too_many}).status_code == 422
    assert client.post("/inferences", json={"items": []}).status_code == 422
