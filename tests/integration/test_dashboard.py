"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright) against
the running stack: in-domain traffic adds points to the drift charts, then out-of-domain text
adds an alert marker, all without a reload."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer
from playwright.sync_api import Page

from broker.clients import producer_config
from models.datasets import sentiment_binary, sms_texts
from tests.integration.conftest import PATIENCE, Stack
from tests.integration.test_monitor import send

pytestmark = pytest.mark.integration

POINTS = (
    "[...document.querySelectorAll('svg[data-chart=ks_d]')]"
    ".reduce((n, chart) => n + +chart.dataset.points, 0)"
)
MARKERS = "document.querySelectorAll('svg[data-chart=ks_d] .alert-marker').length"


def test_the_dashboard_shows_new_reports_and_alerts_live(live: Stack, page: Page) -> None:
    s = live.settings
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live.url}/ui")
    page.wait_for_selector("#live.on", timeout=PATIENCE * 30_000)  # the event stream is open
    page.evaluate("window.notReloaded = true")
    points, markers = page.evaluate(POINTS), page.evaluate(MARKERS)

    producer = Producer(producer_config(s))
    send(s, producer, sentiment_binary()["text"].sample(300, random_state=7).tolist(), seconds=6)
    page.wait_for_function(f"{POINTS} > {points}", timeout=PATIENCE * 90_000)

    send(s, producer, sms_texts()["text"].sample(900, random_state=7).tolist(), seconds=20)
    page.wait_for_function(f"{MARKERS} > {markers}", timeout=PATIENCE * 120_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#models .alerts").count() >= 1
    page.screenshot(path=str(s.home / "dashboard.png"), full_page=True)
    assert not errors, errors
