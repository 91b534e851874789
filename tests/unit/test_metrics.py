"""Prometheus metrics: the gateway's ASGI middleware, the flows' counters, the supervisor's
metrics ports, and `driftline status` rendered from a fake stack and scraped text."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app import status
from app.topology import FLOWS, flow_specs, gateway_spec, metrics_port
from driftline import settings
from driftline.settings import SettingsError
from driftline.topics import (
    Alert,
    DriftReport,
    EstimatedPerformance,
    FeedbackStats,
    ModelRef,
)
from flows import metrics as flow_metrics
from flows.kafka import KafkaInput, _Partition
from gateway import metrics

# ---- gateway middleware ----------------------------------------------------------------------


def tiny_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(metrics.MetricsMiddleware)

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        in_flight = REGISTRY.get_sample_value("driftline_gateway_requests_in_flight")
        return {"item_id": item_id, "in_flight": in_flight}

    @app.post("/items")
    async def refuse() -> None:
        raise HTTPException(status_code=503, detail="no")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("boom")

    @app.get("/metrics")
    async def prometheus() -> Any:
        from fastapi import Response

        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app


def requests(route: str, method: str, code: str) -> float:
    labels = {"route": route, "method": method, "status": code}
    return REGISTRY.get_sample_value("driftline_gateway_requests_total", labels) or 0.0


def durations(route: str) -> float:
    labels = {"route": route}
    return (
        REGISTRY.get_sample_value("driftline_gateway_request_duration_seconds_count", labels) or 0
    )


async def _send(app: FastAPI, calls: list[tuple[str, str]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return [await client.request(method, path) for method, path in calls]


def test_middleware_counts_requests_by_route_template_method_and_status() -> None:
    app = tiny_app()
    before = {
        "ok": requests("/items/{item_id}", "GET", "200"),
        "invalid": requests("/items/{item_id}", "GET", "422"),
        "refused": requests("/items", "POST", "503"),
        "crash": requests("/crash", "GET", "500"),
        "unmatched": requests(metrics.UNMATCHED, "GET", "404"),
        "timed": durations("/items/{item_id}"),
    }
    calls = [("GET", "/items/1"), ("GET", "/items/2"), ("GET", "/items/x")]
    calls += [("POST", "/items"), ("GET", "/crash"), ("GET", "/no/such/path/123")]
    answers = asyncio.run(_send(app, calls))
    assert [a.status_code for a in answers] == [200, 200, 422, 503, 500, 404]
    assert answers[0].json()["in_flight"] >= 1  # counted while served
    assert requests("/items/{item_id}", "GET", "200") == before["ok"] + 2
    assert requests("/items/{item_id}", "GET", "422") == before["invalid"] + 1
    assert requests("/items", "POST", "503") == before["refused"] + 1
    assert requests("/crash", "GET", "500") == before["crash"] + 1
    assert requests(metrics.UNMATCHED, "GET", "404") == before["unmatched"] + 1
    assert durations("/items/{item_id}") == before["timed"] + 3
    assert REGISTRY.get_sample_value("driftline_gateway_requests_in_flight") == 0


def test_metrics_endpoint_parses_with_the_prometheus_parser() -> None:
    app = tiny_app()
    metrics.PENDING.set(2)
    metrics.PUBLISH_ERRORS.labels("inference.requests").inc()
    first, second = asyncio.run(_send(app, [("GET", "/items/7"), ("GET", "/metrics")]))
    assert first.status_code == 200 and second.status_code == 200
    assert second.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(second.text)}
    assert families["driftline_gateway_requests"].type == "counter"
    assert families["driftline_gateway_request_duration_seconds"].type == "histogram"
    assert families["driftline_gateway_requests_in_flight"].type == "gauge"
    pending = families["driftline_gateway_pending_replies"].samples
    assert [s.value for s in pending] == [2.0]
    errors = families["driftline_gateway_publish_errors"].samples
    assert any(s.labels == {"topic": "inference.requests"} and s.value >= 1 for s in errors)
    routes = {s.labels.get("route") for s in families["driftline_gateway_requests"].samples}
    assert "/items/{item_id}" in routes
    metrics.PENDING.set(0)


MULTIPROCESS = """
import os, sys
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from gateway import metrics
metrics.REQUESTS.labels("/inference", "POST", "200").inc(int(sys.argv[2]))
metrics.IN_FLIGHT.inc()
print(os.getpid())
"""


def test_multiprocess_mode_sums_every_worker_and_forgets_dead_workers_gauges(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "gateway-metrics"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"stale")  # from an earlier run: removed
    code = (
        "import os; from pathlib import Path; from gateway.metrics import prepare_multiprocess;"
        f" prepare_multiprocess(Path({str(folder)!r}));"
        " print(os.environ['PROMETHEUS_MULTIPROC_DIR'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(folder) and not (folder / "counter_1.db").exists()
    writers = []
    for count in (3, 4):  # two workers, both gone when they exit
        run = [sys.executable, "-c", MULTIPROCESS, str(folder), str(count)]
        writers.append(int(subprocess.run(run, capture_output=True, check=True).stdout))
    reader = (
        f"import os; os.environ['PROMETHEUS_MULTIPROC_DIR'] = {str(folder)!r}\n"
        "from gateway import metrics\nprint(metrics.exposition()[0].decode())"
    )
    text = subprocess.run(
        [sys.executable, "-c", reader], capture_output=True, text=True, check=True
    ).stdout
    samples = status.parse(text)
    total = samples["driftline_gateway_requests_total"]
    assert [v for labels, v in total if labels["route"] == "/inference"] == [7.0]
    # Both writers exited without marking themselves dead: their in-flight gauges are dropped.
    assert sum(v for _, v in samples.get("driftline_gateway_requests_in_flight", [])) == 0
    assert all(not list(folder.glob(f"gauge_livesum_{pid}.db")) for pid in writers)


# ---- flows -----------------------------------------------------------------------------------


def report(ks_d: float, f1: float | None) -> DriftReport:
    return DriftReport(
        model=ModelRef(name="m_unit", version="3"),
        window_start=datetime(2026, 11, 29, 10, tzinfo=UTC),
        window_end=datetime(2026, 11, 29, 11, tzinfo=UTC),
        emitted_at=datetime(2026, 11, 29, 11, 1, tzinfo=UTC),
        n=120,
        share=0.5,
        ks_d=ks_d,
        domain_auc=None,
        estimated=EstimatedPerformance(f1=0.7),
        feedback=FeedbackStats(n=0, f1=f1),
    )


def test_monitor_gauges_follow_the_latest_report_and_count_alerts() -> None:
    labels = {"model": "m_unit", "version": "3"}
    flow_metrics.report(report(0.1, 0.8))
    flow_metrics.report(report(0.3, None))  # no feedback this window: F1 keeps its last value
    value = REGISTRY.get_sample_value
    assert value("driftline_model_ks_d", labels) == pytest.approx(0.3)
    assert value("driftline_model_feedback_f1", labels) == pytest.approx(0.8)
    assert value("driftline_model_cbpe_f1", labels) == pytest.approx(0.7)
    assert value("driftline_model_domain_auc", labels) is None
    end = datetime(2026, 11, 29, 11, tzinfo=UTC).timestamp()
    assert value("driftline_model_window_end_timestamp_seconds", labels) == end
    alert = Alert(
        alert_id="a",
        model=ModelRef(name="m_unit", version="3"),
        metric="ks_d",
        value=0.3,
        threshold=0.2,
        window_end=datetime(2026, 11, 29, 11, tzinfo=UTC),
        message="",
        created_at=datetime(2026, 11, 29, 11, tzinfo=UTC),
    )
    flow_metrics.alert(alert)
    flow_metrics.alert(alert)
    assert value("driftline_model_alerts_total", labels | {"metric": "ks_d"}) == 2


class FakeShared:
    def __init__(self, batches: list[list[Any]], marks: tuple[int, int] | None) -> None:
        self.batches, self.marks = batches, marks

    def add(self, topic: str, partition: int, offset: int) -> None:
        pass

    def take(self, topic: str, partition: int) -> list[Any]:
        return self.batches.pop(0) if self.batches else []

    def quiet_for(self) -> float:
        return 0.0

    def high_watermark(self, topic: str, partition: int) -> tuple[int, int] | None:
        return self.marks


class Raw:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def test_source_partition_counts_messages_and_measures_lag(monkeypatch: Any) -> None:
    source = KafkaInput("127.0.0.1:1", ["t_unit"], 10, {}, flow="unitflow")
    shared = FakeShared([[Raw(5), Raw(6), Raw(7)]], (0, 20))
    monkeypatch.setattr(source, "shared", lambda key: shared)
    part = _Partition(source, ("in", 1), "t_unit", 2)
    part.start_at(5)
    value = REGISTRY.get_sample_value
    lag = {"flow": "unitflow", "topic": "t_unit", "partition": "2"}
    before = value("driftline_flow_messages_in_total", {"flow": "unitflow", "topic": "t_unit"})
    assert len(part.next_batch()) == 3
    after = value("driftline_flow_messages_in_total", {"flow": "unitflow", "topic": "t_unit"})
    assert after == (before or 0) + 3
    assert value("driftline_flow_consumer_lag_messages", lag) == 20 - 8
    last = value(
        "driftline_flow_last_message_timestamp_seconds", {"flow": "unitflow", "topic": "t_unit"}
    )
    assert last is not None and last > 0


def test_dead_letters_are_counted_by_kind_when_published() -> None:
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.testing import TestingSource, run_main

    from driftline.topics import REQUESTS
    from flows import wiring
    from flows.kafka import KafkaSourceMessage

    s = settings.load({})
    flow = Dataflow("deadcount")
    raws = [
        KafkaSourceMessage(key=None, value=b"{not json", topic="inference.requests", offset=1),
        KafkaSourceMessage(key=None, value=b'{"data": ""}', topic="inference.requests", offset=2),
    ]
    _parsed, dead = wiring.parse(
        "parse", op.input("in", flow, TestingSource(raws)), "deadcount", s, [REQUESTS]
    )
    letters = op.map("dead", dead, wiring.to_deadletter)
    captured: list[Any] = []

    # The serialize step of `publish` counts; capture what it would produce instead of a broker.
    def fake_output(step_id: str, up: Any, sink: Any) -> None:
        op.inspect(step_id, up, lambda _s, item: captured.append(item))

    original = wiring.op.output
    wiring.op.output = fake_output  # type: ignore[assignment]
    try:
        wiring.publish("out", letters, s)
    finally:
        wiring.op.output = original
    value = REGISTRY.get_sample_value
    before = {
        kind: value("driftline_flow_dead_letters_total", {"flow": "deadcount", "reason": kind}) or 0
        for kind in ("not_json", "invalid")
    }
    run_main(flow)
    assert len(captured) == 2
    for kind in ("not_json", "invalid"):
        labels = {"flow": "deadcount", "reason": kind}
        assert value("driftline_flow_dead_letters_total", labels) == before[kind] + 1


# ---- supervisor: ports and URLs --------------------------------------------------------------


def test_every_flow_process_gets_its_own_metrics_port(tmp_path: Path) -> None:
    s = settings.load({}, home=tmp_path, profile="cluster", metrics_port_base=19400)
    specs = [spec for name in FLOWS for spec in flow_specs(s, name, "epoch0")]
    ports = [int(spec.env["BYTEWAX_DATAFLOW_API_PORT"]) for spec in specs]
    assert len(specs) == 2 * len(FLOWS) and len(set(ports)) == len(ports)
    assert ports[:2] == [19400, 19401] and metrics_port(s, "monitor", 1) == 19441
    assert all(
        spec.metrics == f"http://127.0.0.1:{p}/metrics"
        for spec, p in zip(specs, ports, strict=True)
    )
    assert all(Path(spec.env["BYTEWAX_DATAFLOW_API_CACHE_PATH"]).is_dir() for spec in specs)
    assert gateway_spec(s).metrics == f"http://127.0.0.1:{s.gateway.port}/metrics"
    off = settings.load({}, home=tmp_path, metrics_port_base=0)
    (spec,) = flow_specs(off, "inference", "epoch0")
    assert spec.metrics is None and "BYTEWAX_DATAFLOW_API_ENABLED" not in spec.env


def test_metrics_ports_are_validated() -> None:
    with pytest.raises(SettingsError, match=r"DRIFTLINE_METRICS_PORT_BASE.*overlap"):
        settings.load({"DRIFTLINE_METRICS_PORT_BASE": "2100"})
    with pytest.raises(SettingsError, match="DRIFTLINE_FLOW_PROCESSES"):
        settings.load({"DRIFTLINE_FLOW_PROCESSES": "12"})
    with pytest.raises(SettingsError, match="at least 1024"):
        settings.load({"DRIFTLINE_METRICS_PORT_BASE": "80"})


# ---- driftline status ------------------------------------------------------------------------

STATE: dict[str, Any] = {
    "supervisor": 4242,
    "profile": "embedded",
    "log_epoch": "ab12",
    "units": {
        "logstore": {
            "server": True,
            "restarts": 0,
            "processes": {"logstore": 99},
            "metrics": {"logstore": "http://127.0.0.1:9310/metrics"},
        },
        "broker": {"server": True, "restarts": 0, "processes": {"broker": 100}, "metrics": {}},
        "inference": {
            "server": False,
            "restarts": 0,
            "processes": {"inference": 101},
            "metrics": {"inference": "http://127.0.0.1:9400/metrics"},
        },
        "monitor": {
            "server": False,
            "restarts": 1,
            "processes": {"monitor": 102},
            "metrics": {"monitor": "http://127.0.0.1:9440/metrics"},
        },
        "ab": {  # died: no live process in stack.json
            "server": False,
            "restarts": 2,
            "processes": {},
            "metrics": {"ab": "http://127.0.0.1:9430/metrics"},
        },
        "rollout": {  # no message yet: its last-message gauge is 0
            "server": False,
            "restarts": 0,
            "processes": {"rollout": 104},
            "metrics": {"rollout": "http://127.0.0.1:9450/metrics"},
        },
        "gateway": {
            "server": False,
            "restarts": 0,
            "processes": {"gateway": 103},
            "metrics": {"gateway": "http://127.0.0.1:8000/metrics"},
        },
    },
}
NOW = 1_800_000_000.0


def flow_text(flow: str, lags: list[int], dead: int, last: float) -> str:
    registry = CollectorRegistry()
    lag = Gauge(
        "driftline_flow_consumer_lag_messages",
        "",
        ["flow", "topic", "partition"],
        registry=registry,
    )
    for i, value in enumerate(lags):
        lag.labels(flow, "inference.results", str(i)).set(value)
    Counter("driftline_flow_dead_letters", "", ["flow", "reason"], registry=registry).labels(
        flow, "late"
    ).inc(dead)
    Counter("driftline_flow_messages_in", "", ["flow", "topic"], registry=registry).labels(
        flow, "x"
    ).inc(9)
    Gauge(
        "driftline_flow_last_message_timestamp_seconds", "", ["flow", "topic"], registry=registry
    ).labels(flow, "x").set(last)
    if flow == "monitor":
        model = ["model", "version"]
        for name, value in [
            ("driftline_model_ks_d", 0.158),
            ("driftline_model_domain_auc", 0.729),
            ("driftline_model_cbpe_f1", 0.552),
            ("driftline_model_window_events", 457),
            ("driftline_model_window_end_timestamp_seconds", NOW - 30),
        ]:
            Gauge(name, "", model, registry=registry).labels("sentiment_logreg_tfidf", "1").set(
                value
            )
        alerts = Counter("driftline_model_alerts", "", [*model, "metric"], registry=registry)
        alerts.labels("sentiment_logreg_tfidf", "1", "ks_d").inc()
    return generate_latest(registry).decode()


def gateway_text() -> str:
    registry = CollectorRegistry()
    requests = Counter(
        "driftline_gateway_requests", "", ["route", "method", "status"], registry=registry
    )
    requests.labels("/inference", "POST", "200").inc(40)
    requests.labels("/ready", "GET", "200").inc(2)
    Gauge("driftline_gateway_requests_in_flight", "", registry=registry).set(1)
    Gauge("driftline_gateway_pending_replies", "", registry=registry).set(0)
    return generate_latest(registry).decode()


LOGSTORE_TEXT = """\
# TYPE driftline_logstore_requests_total counter
driftline_logstore_requests_total{kind="get"} 90
driftline_logstore_requests_total{kind="list"} 10
# TYPE driftline_logstore_listed_objects_total counter
driftline_logstore_listed_objects_total 250
# TYPE driftline_logstore_objects gauge
driftline_logstore_objects{bucket="tansu"} 37
"""
"""What the log store (Go, `servers/logstore/metrics.go`) serves, cut short."""


def fake_scrape(url: str) -> str:
    if ":9310/" in url:
        return LOGSTORE_TEXT
    if ":9400/" in url:
        return flow_text("inference", [3, 4], 1, NOW - 5)
    if ":9440/" in url:
        return flow_text("monitor", [0], 2, NOW - 200)
    if ":9450/" in url:
        return flow_text("rollout", [0], 0, 0)
    if ":8000/" in url:
        return gateway_text()
    raise httpx.ConnectError("refused")


def test_status_renders_units_lag_and_models_from_metrics(tmp_path: Path) -> None:
    s = settings.load({}, home=tmp_path)
    result = status.collect(
        s, STATE, scraper=fake_scrape, is_alive=lambda pid: True, lake=None, now=NOW
    )
    by_name = {p.name: p for p in result.processes}
    assert by_name["inference"].lag == 7 and by_name["inference"].dead_letters == 1
    assert by_name["monitor"].lag == 0 and by_name["gateway"].requests == 42
    assert not by_name["ab"].alive and by_name["broker"].metrics_url is None
    assert not result.healthy
    (model,) = result.models
    assert (model.model, model.version, model.n, model.ks_d) == (
        "sentiment_logreg_tfidf",
        "1",
        457,
        0.158,
    )
    assert model.alerts == ["ks_d x1"]
    text = status.render(result)
    lines = text.splitlines()
    assert "embedded profile, supervisor pid 4242" in lines[0]
    assert "6 of 7 alive" in lines[1]
    row = {
        line.split()[1]: line.split()
        for line in lines
        if line.split()[:1]
        in (["inference"], ["monitor"], ["ab"], ["gateway"], ["broker"], ["rollout"])
    }
    assert row["inference"][2:7] == ["101", "up", "7", "1", "5s"]
    assert row["monitor"][6:8] == ["3m", "ago"]
    assert row["ab"][3] == "DOWN"
    assert row["rollout"][6] == "-"  # not 1970
    assert "42 requests, 0 in flight, 0 awaiting results" in text  # the scrape is not counted
    assert "100 S3 requests, 37 objects, listings of 25" in text
    assert "sentiment_logreg_tfidf/1" in text and "0.158" in text and "ks_d x1" in text
    assert "the monitor's metrics" in text


def test_status_reports_a_scrape_failure_and_prefers_the_lake(tmp_path: Path) -> None:
    s = settings.load({}, home=tmp_path)
    state = STATE | {"units": {"inference": STATE["units"]["inference"]}}

    def refuse(url: str) -> str:
        raise httpx.ConnectError("connection refused")

    lake = [
        status.ModelStatus(
            "m",
            "2",
            datetime(2026, 11, 29, 9, tzinfo=UTC),
            10,
            1.0,
            0.01,
            0.5,
            0.8,
            0.75,
            ["ks_d 0.3>0.2"],
        )
    ]
    result = status.collect(
        s, state, scraper=refuse, is_alive=lambda pid: True, lake=lambda _: lake, now=NOW
    )
    assert result.healthy and result.processes[0].scrape_error == "connection refused"
    text = status.render(result)
    assert "metrics: connection refused" in text
    assert (
        "the lake's drift_metrics" in text
        and "2026-11-29 09:00:00" in text
        and "ks_d 0.3>0.2" in text
    )

    def broken(_: Any) -> list[status.ModelStatus]:
        raise OSError("catalog locked")

    result = status.collect(
        s, state, scraper=refuse, is_alive=lambda pid: True, lake=broken, now=NOW
    )
    assert "lake not readable: catalog locked" in status.render(result)


def test_status_without_a_running_stack_exits_1_with_the_reason(
    tmp_path: Path, capsys: Any
) -> None:
    s = settings.load({}, home=tmp_path)
    assert status.main(s) == 1
    assert "no stack is running" in capsys.readouterr().err
    # A stack.json whose supervisor is gone counts as no stack.
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stack.json").write_text(
        f'{{"supervisor": {int(finished.stdout)}, "units": {{}}}}'
    )
    assert status.main(s) == 1
