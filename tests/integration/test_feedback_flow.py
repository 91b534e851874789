"""The feedback join through the running stack, across a `kill -9` of the feedback flow."""

from __future__ import annotations

from collections import defaultdict

import httpx
import pytest
from confluent_kafka import Producer

from broker.clients import producer_config
from driftline.clock import utc_now
from driftline.topics import FEEDBACK, LABELED, Feedback, message_key
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_ab import kcat_json, post

pytestmark = pytest.mark.integration

ROUNDS = (0.1, 0.2, 0.3)  # one score per round and inference, so each one is recognisable


def test_kill_9_of_the_feedback_flow_loses_nothing_and_counts_nothing_twice(
    live: Stack, client: httpx.Client
) -> None:
    s = live.settings
    ids = [post(client, {"data": f"crash test {i}"})["inference_id"] for i in range(12)]
    accepted: dict[float, list[dict]] = defaultdict(list)

    def send(score: float) -> None:
        for inference_id in ids:
            answer = client.patch(
                "/inference", json={"inference_id": inference_id, "feedback": score}
            )
            assert answer.status_code == 202, answer.text
            accepted[score].append(answer.json())

    def last_labeled(expected: int) -> dict[str, dict] | None:
        last = {}
        for message in kcat_json(s, LABELED.name(s.kafka)):  # in order within each partition
            if message["inference_id"] in ids:
                last[message["inference_id"]] = message
        done = len(last) == len(ids) and all(len(m["feedback"]) == expected for m in last.values())
        return last if done else None

    send(ROUNDS[0])
    wait_until(lambda: last_labeled(1), timeout=30)

    killed = live.kill("feedback")  # right after its output: the replay covers round 1
    send(ROUNDS[1])  # while it is down, or restarting
    producer = Producer(producer_config(s))
    for answer in accepted[ROUNDS[0]]:  # round 1 re-delivered: same feedback ids
        again = Feedback(
            feedback_id=answer["feedback_id"],
            inference_id=answer["inference_id"],
            feedback=ROUNDS[0],
            created_at=utc_now(),
        )
        producer.produce(FEEDBACK.name(s.kafka), again.to_json(), message_key(FEEDBACK, again))
    producer.flush(10)
    live.wait_restarted("feedback", killed)  # by the supervisor, not by the test
    send(ROUNDS[2])

    last = wait_until(lambda: last_labeled(3), timeout=60)
    for message in last.values():
        assert sorted(message["feedback"]) == list(ROUNDS)
        assert message["feedback_mean"] == pytest.approx(sum(ROUNDS) / 3)
