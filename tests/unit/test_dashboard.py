"""The dashboard's server side: its page and files, and history from a real DuckLake in a temp
folder. The page itself runs in Chromium in tests/integration/test_dashboard.py."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import lakehouse
from driftline import settings
from driftline.clock import utc_now
from driftline.settings import Settings
from driftline.tables import AB_METRICS, ALERTS, DRIFT_METRICS
from driftline.topics import (
    ABReport,
    Alert,
    ArmStats,
    DriftReport,
    EstimatedPerformance,
    FeedbackStats,
    ModelRef,
)
from gateway import dashboard
from gateway.live import MonitoringTail

MODEL = ModelRef(name="m", version="1")


def drift(hours_ago: float) -> DriftReport:
    end = utc_now() - timedelta(hours=hours_ago)
    return DriftReport(
        model=MODEL,
        window_start=end - timedelta(minutes=5),
        window_end=end,
        emitted_at=end,
        n=10,
        ks_d=0.1,
        estimated=EstimatedPerformance(f1=0.7),
        feedback=FeedbackStats(n=0),
    )


@pytest.fixture()
def lake_settings(tmp_path: Path) -> Settings:
    s = settings.load(home=tmp_path)
    con = lakehouse.connect(s.lake)
    lakehouse.ensure_schema(con)
    reports = [drift(h) for h in (30, 2, 1)]
    lakehouse.write_rows(con, DRIFT_METRICS, [DRIFT_METRICS.row(r) for r in reports])
    ab = ABReport(
        experiment="default",
        emitted_at=utc_now(),
        arms=[ArmStats(arm="a", model=MODEL, traffic=5), ArmStats(arm="b", traffic=3)],
    )
    lakehouse.write_rows(con, AB_METRICS, [AB_METRICS.row(ab)])
    alert = Alert(
        alert_id="x",
        model=MODEL,
        metric="ks_d",
        value=0.3,
        window_end=reports[-1].window_end,
        message="KS D above 0.2",
        created_at=utc_now(),
    )
    lakehouse.write_rows(con, ALERTS, [ALERTS.row(alert)])
    con.close()
    return s


def get(s: Settings, path: str) -> httpx.Response:
    app = FastAPI()
    app.include_router(dashboard.router(s, MonitoringTail(s)))

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def test_history_is_the_range_asked_for_oldest_first(lake_settings: Settings) -> None:
    body = (get(lake_settings, "/ui/history?hours=6")).json()
    ends = [row["window_end"] for row in body["drift"]]
    assert len(ends) == 2 and ends == sorted(ends)  # the 30-hour-old report is outside
    assert body["drift"][0]["model_name"] == "m" and body["drift"][0]["estimated_f1"] == 0.7
    assert [arm["arm"] for arm in body["ab"][0]["arms"]] == ["a", "b"]  # JSON parsed
    assert [a["alert_id"] for a in body["alert"]] == ["x"]
    assert body["config"]["alert_levels"]["ks_d"] == lake_settings.alerts.ks_d
    assert len((get(lake_settings, "/ui/history?hours=48")).json()["drift"]) == 3
    assert (get(lake_settings, "/ui/history?hours=0")).status_code == 422


def test_history_before_the_lake_exists_is_empty(tmp_path: Path) -> None:
    body = (get(settings.load(home=tmp_path), "/ui/history")).json()
    assert (body["drift"], body["ab"], body["alert"]) == ([], [], [])


def test_the_page_and_its_files_are_served_and_nothing_else(tmp_path: Path) -> None:
    s = settings.load(home=tmp_path)
    page = get(s, "/ui")
    assert page.status_code == 200 and "/ui/static/dashboard.js" in page.text
    script = get(s, "/ui/static/dashboard.js")
    assert script.status_code == 200 and "EventSource" in script.text
    assert "http" not in script.text.replace("http://www.w3.org/2000/svg", "")  # no CDN
    assert get(s, "/ui/static/%2e%2e").status_code == 404  # the folder above
    assert get(s, "/ui/static/nothing.js").status_code == 404
