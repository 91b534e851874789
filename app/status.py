"""`driftline status`: the running stack on one screen.

From `<home>/run/stack.json` (written by `driftline up`): each unit's processes, whether each
is alive (its pid answers and is no zombie), and, from its Prometheus endpoint, the consumer lag
summed over its partitions, dead letters and when it last took a message (the gateway: requests
answered, in flight and waiting for a result). Then, per model version, the latest drift window
from the lake's `drift_metrics` (or, when the lake cannot be read, from the monitor's
`driftline_model_*` gauges) and the alerts raised within the last window length.

Exit codes: 0 every process alive; 1 no stack running; 3 a stack, with a process down.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.supervisor import read_state, state_file
from driftline.settings import Settings

SCRAPE_TIMEOUT = 2.0

Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Metric sample name -> (labels, value) of every sample: one scrape, parsed."""


@dataclass
class ProcessStatus:
    unit: str
    name: str
    pid: int | None
    alive: bool
    server: bool = False
    metrics_url: str | None = None
    scrape_error: str | None = None
    lag: float | None = None
    """Consumer lag summed over the process's partitions."""
    dead_letters: float | None = None
    messages_in: float | None = None
    last_message: float | None = None
    """Unix time the process last took a message."""
    requests: float | None = None
    in_flight: float | None = None
    pending: float | None = None
    store_requests: float | None = None
    """The log store's S3 requests, its objects, and the objects a listing returns on average
    (what each fetch that finds something new costs the broker)."""
    store_objects: float | None = None
    listed_per_listing: float | None = None


@dataclass
class ModelStatus:
    model: str
    version: str
    window_end: datetime | None = None
    n: float | None = None
    share: float | None = None
    ks_d: float | None = None
    domain_auc: float | None = None
    cbpe_f1: float | None = None
    feedback_f1: float | None = None
    alerts: list[str] = field(default_factory=list)


@dataclass
class Status:
    home: Path
    profile: str
    supervisor: int
    log_epoch: str | None
    processes: list[ProcessStatus]
    models: list[ModelStatus]
    models_source: str
    """Where the model rows come from: `lake`, `metrics` or an explanation of why none."""
    now: float

    @property
    def healthy(self) -> bool:
        return all(p.alive for p in self.processes)


# ---- gathering -----------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: the signal check is all there is
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def scrape(url: str) -> str:
    response = httpx.get(url, timeout=SCRAPE_TIMEOUT)
    response.raise_for_status()
    return response.text


def parse(text: str) -> Samples:
    """A Prometheus exposition, as sample name -> [(labels, value)]."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _sum(samples: Samples, name: str) -> float | None:
    found = samples.get(name)
    return None if found is None else sum(v for _, v in found)


def _max(samples: Samples, name: str) -> float | None:
    found = samples.get(name)
    return None if not found else max(v for _, v in found)


def process_rows(
    state: dict[str, Any], is_alive: Callable[[int], bool] = pid_alive
) -> list[ProcessStatus]:
    """Every process `stack.json` names, in unit order; a unit with none running is one row."""
    rows = []
    for unit, info in state.get("units", {}).items():
        pids: dict[str, int] = info.get("processes", {})
        urls: dict[str, str] = info.get("metrics", {})
        names = list(dict.fromkeys([*pids, *urls])) or [unit]
        for name in names:
            pid = pids.get(name)
            rows.append(
                ProcessStatus(
                    unit=unit,
                    name=name,
                    pid=pid,
                    alive=pid is not None and is_alive(pid),
                    server=bool(info.get("server")),
                    metrics_url=urls.get(name),
                )
            )
    return rows


def fill_from_metrics(row: ProcessStatus, samples: Samples) -> None:
    row.lag = _sum(samples, "driftline_flow_consumer_lag_messages")
    row.dead_letters = _sum(samples, "driftline_flow_dead_letters_total")
    if row.dead_letters is None and row.lag is not None:  # a flow that refused nothing yet
        row.dead_letters = 0.0
    row.messages_in = _sum(samples, "driftline_flow_messages_in_total")
    last = _max(samples, "driftline_flow_last_message_timestamp_seconds")
    row.last_message = last if last else None  # 0: the gauge exists, no message came yet
    row.requests = _sum(samples, "driftline_gateway_requests_total")
    in_flight = _sum(samples, "driftline_gateway_requests_in_flight")
    row.in_flight = None if in_flight is None else max(in_flight - 1, 0)  # not this scrape
    row.pending = _sum(samples, "driftline_gateway_pending_replies")
    row.store_requests = _sum(samples, "driftline_logstore_requests_total")
    row.store_objects = _sum(samples, "driftline_logstore_objects")
    counts = logstore_counts(samples)
    if counts.get("list"):
        row.listed_per_listing = counts["listed"] / counts["list"]


def logstore_counts(samples: Samples) -> dict[str, float]:
    """The log store's requests by kind (`get`, `list`, ...), and `listed`: the objects its
    listings returned."""
    requests = samples.get("driftline_logstore_requests_total", [])
    counts = {labels["kind"]: value for labels, value in requests}
    return counts | {"listed": _sum(samples, "driftline_logstore_listed_objects_total") or 0.0}


_GAUGES = {
    "driftline_model_window_events": "n",
    "driftline_model_traffic_share": "share",
    "driftline_model_ks_d": "ks_d",
    "driftline_model_domain_auc": "domain_auc",
    "driftline_model_cbpe_f1": "cbpe_f1",
    "driftline_model_feedback_f1": "feedback_f1",
}


def models_from_metrics(scrapes: Iterable[Samples]) -> list[ModelStatus]:
    """Per model version, the monitor's latest-report gauges (and its alert counters)."""
    models: dict[tuple[str, str], ModelStatus] = {}

    def model(labels: dict[str, str]) -> ModelStatus:
        key = (labels.get("model", "?"), labels.get("version", "?"))
        return models.setdefault(key, ModelStatus(*key))

    for samples in scrapes:
        for labels, value in samples.get("driftline_model_window_end_timestamp_seconds", []):
            model(labels).window_end = datetime.fromtimestamp(value, UTC)
        for name, attribute in _GAUGES.items():
            for labels, value in samples.get(name, []):
                setattr(model(labels), attribute, value)
        for labels, value in samples.get("driftline_model_alerts_total", []):
            if value > 0:
                model(labels).alerts.append(f"{labels.get('metric', '?')} x{value:g}")
    return [models[k] for k in sorted(models)]


LATEST_WINDOWS = """
SELECT model_name, model_version, window_end, n, share, ks_d, domain_auc, estimated_f1,
       feedback_f1
FROM drift_metrics
QUALIFY row_number() OVER (
    PARTITION BY model_name, model_version ORDER BY window_end DESC, emitted_at DESC) = 1
ORDER BY model_name, model_version
"""
RECENT_ALERTS = """
SELECT model_name, model_version, metric, value, threshold, window_end
FROM alerts WHERE window_end >= ? ORDER BY window_end DESC LIMIT 500
"""


def models_from_lake(settings: Settings) -> list[ModelStatus]:
    """Per model version, its latest window in `drift_metrics`, with the alerts raised within
    one window length before it (read-only: safe beside the lake writer)."""
    import lakehouse

    con = lakehouse.connect(settings.lake, read_only=True)
    try:
        latest = con.execute(LATEST_WINDOWS).fetchall()
        if not latest:
            return []
        span = timedelta(seconds=settings.monitor.window_seconds)
        oldest = min(_utc(row[2]) for row in latest) - span
        alerts = con.execute(RECENT_ALERTS, [oldest]).fetchall()
    finally:
        con.close()
    models = []
    for name, version, end, n, share, ks_d, auc, cbpe, fb in latest:
        end = _utc(end)
        model = ModelStatus(name, version, end, n, share, ks_d, auc, cbpe, fb)
        for a_name, a_version, metric, value, threshold, a_end in alerts:
            if (a_name, a_version) == (name, version) and _utc(a_end) > end - span:
                limit = "" if threshold is None else f">{threshold:g}"
                model.alerts.append(f"{metric} {value:.3g}{limit}")
        models.append(model)
    return models


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def collect(
    settings: Settings,
    state: dict[str, Any],
    *,
    scraper: Callable[[str], str] = scrape,
    is_alive: Callable[[int], bool] = pid_alive,
    lake: Callable[[Settings], list[ModelStatus]] | None = models_from_lake,
    now: float | None = None,
) -> Status:
    """The status of the stack `state` describes; `lake` None: models from metrics only."""
    rows = process_rows(state, is_alive)
    scrapes: list[Samples] = []
    for row in rows:
        if row.metrics_url is None or not row.alive:
            continue
        try:
            samples = parse(scraper(row.metrics_url))
        except (httpx.HTTPError, ValueError) as exc:
            row.scrape_error = str(exc) or type(exc).__name__
            continue
        fill_from_metrics(row, samples)
        if row.unit == "monitor":
            scrapes.append(samples)
    models: list[ModelStatus] = []
    source, note = "the lake's drift_metrics", ""
    if lake is not None:
        try:
            models = lake(settings)
        except Exception as exc:  # no lake yet, catalog locked or unreadable: use the gauges
            note = f"; lake not readable: {(str(exc).splitlines() or [''])[0][:80]}"
    if not models:
        models = models_from_metrics(scrapes)
        source = "the monitor's metrics" + note
    return Status(
        home=settings.home,
        profile=str(state.get("profile", "?")),
        supervisor=int(state.get("supervisor", 0)),
        log_epoch=state.get("log_epoch"),
        processes=rows,
        models=models,
        models_source=source,
        now=time.time() if now is None else now,
    )


# ---- rendering -----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _count(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _ago(then: float | None, now: float) -> str:
    if then is None:
        return "-"
    seconds = max(now - then, 0.0)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    ]


def render(status: Status) -> str:
    up = sum(p.alive for p in status.processes)
    lines = [
        f"driftline: {status.profile} profile, supervisor pid {status.supervisor}, "
        f"home {status.home}",
        f"processes: {up} of {len(status.processes)} alive"
        + (f", broker log epoch {status.log_epoch}" if status.log_epoch else ""),
        "",
    ]
    rows = []
    for p in status.processes:
        if p.requests is not None or p.in_flight is not None:
            activity = (
                f"{_count(p.requests)} requests, {_count(p.in_flight)} in flight, "
                f"{_count(p.pending)} awaiting results"
            )
        elif p.store_requests is not None:
            activity = (
                f"{_count(p.store_requests)} S3 requests, {_count(p.store_objects)} objects, "
                f"listings of {_count(p.listed_per_listing)}"
            )
        elif p.scrape_error is not None:
            activity = f"metrics: {p.scrape_error[:60]}"
        else:
            activity = ""
        rows.append(
            [
                p.unit,
                p.name,
                str(p.pid) if p.pid is not None else "-",
                "up" if p.alive else "DOWN",
                _count(p.lag),
                _count(p.dead_letters),
                _ago(p.last_message, status.now) if p.messages_in is not None else "-",
                p.metrics_url or "-",
                activity,
            ]
        )
    header = ["UNIT", "PROCESS", "PID", "STATE", "LAG", "DEAD", "LAST IN", "METRICS", ""]
    lines += _table(header, rows)
    lines.append("")
    if not status.models:
        lines.append(f"models: no drift window reported yet (from {status.models_source})")
        return "\n".join(lines)
    lines.append(f"models: latest window (from {status.models_source})")
    model_rows = [
        [
            f"{m.model}/{m.version}",
            m.window_end.strftime("%Y-%m-%d %H:%M:%S") if m.window_end else "-",
            _count(m.n),
            _num(m.share, 2),
            _num(m.ks_d),
            _num(m.domain_auc),
            _num(m.cbpe_f1),
            _num(m.feedback_f1),
            ", ".join(m.alerts[:3]) + (f" (+{len(m.alerts) - 3})" if len(m.alerts) > 3 else "")
            or "none",
        ]
        for m in status.models
    ]
    header = ["MODEL", "WINDOW END (UTC)", "N", "SHARE", "KS D", "DOMAIN AUC", "CBPE F1"]
    lines += _table([*header, "FEEDBACK F1", "ALERTS"], model_rows)
    return "\n".join(lines)


def main(settings: Settings, lake: bool = True) -> int:
    """Print the status; 0 all alive, 1 no stack running, 3 some process down."""
    state = read_state(settings)
    if state is None:
        print(
            f"driftline: no stack is running for {settings.home} (no live supervisor in "
            f"{state_file(settings)}); start one with `driftline up`",
            file=sys.stderr,
        )
        return 1
    status = collect(settings, state, lake=models_from_lake if lake else None)
    print(render(status))
    return 0 if status.healthy else 3
