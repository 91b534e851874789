"""The embedded broker is supervised and keeps its log on disk: killing it, or its log store,
under load loses nothing. Every request answered 200 or 504 lands in the lake exactly once,
with every feedback score the gateway accepted (202)."""

from __future__ import annotations

import pytest

from app.topology import BROKER, LOGSTORE
from tests.integration.conftest import Stack
from tests.integration.load import assert_all_landed_once, run_load, unit_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE, SECONDS = 50.0, 20.0
"""The issue's load: 50 requests/s, with a kill a third of the way in."""


@pytest.mark.parametrize("unit", [BROKER, LOGSTORE])
def test_kill_9_under_load_loses_nothing(live: Stack, unit: str) -> None:
    load = run_load(live, RATE, SECONDS, kills=[(SECONDS / 3, unit_process(unit))])
    answered = load.statuses.get(200, 0)
    assert answered > 0.5 * RATE * SECONDS, load.statuses  # the outage is short
    assert_all_landed_once(live, load)
