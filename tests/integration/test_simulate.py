"""`driftline simulate` against the running stack: every planned request and feedback score
lands in the lake with the planned event time."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from app import simulate
from driftline.clock import utc_now
from models import data
from tests.integration.conftest import Stack, wait_until
from tests.integration.test_spine import lake_rows

pytestmark = pytest.mark.integration


def test_a_small_simulation_lands_in_the_lake_with_its_event_times(live: Stack) -> None:
    s = live.settings
    options = simulate.Options(passes=2, sample=0.004, days=1 / 24, drift_at=0.5, seed=5)
    monitor = data.read_set(s, "sentiment_monitor")
    ood = data.read_set(s, "ood_texts")
    sms = ood.loc[ood["source"] == "sms", "text"].tolist()
    steps = simulate.plan(monitor, sms, options, end=utc_now() - timedelta(seconds=1))
    outcome = simulate.run(s, steps)
    planned_feedback = sum(len(step.feedback) for step in steps)
    assert (outcome.requests, outcome.scored, outcome.failed) == (len(steps), len(steps), {})
    assert outcome.feedback == planned_feedback and planned_feedback > 0
    assert 0 < outcome.drifted < len(steps)
    summary = json.loads(json.dumps(outcome.summary()))  # what `driftline simulate` prints
    assert summary["scored"] == len(steps) and sum(summary["arms"].values()) == len(steps)

    expected = {(step.created_at, step.text): len(step.feedback) for step in steps}
    first, last = steps[0].created_at, steps[-1].created_at

    def landed() -> dict | None:
        rows = lake_rows(
            s,
            "SELECT created_at, data, len(feedback) FROM inferences_with_feedback "
            "WHERE created_at BETWEEN ? AND ?",
            [first, last],
        )
        found = {(at, text): n for at, text, n in rows if (at, text) in expected}
        return found if found == expected else None

    assert wait_until(landed, timeout=30) == expected
