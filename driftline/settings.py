"""All configuration, from environment variables with defaults that run on one machine.

Every process (CLI, gateway, flows, tests) reads its configuration through `load()`, so one
`DRIFTLINE_*` variable changes the whole system. Only configuration differs between the embedded
default and the scale-out deployment (docker-compose.yml); the code is the same.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

PREFIX = "DRIFTLINE_"


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; build it with `load()` rather than by hand."""

    home: Path
    """Project data folder: broker state, MLflow store, lake, recovery stores, logs."""

    brokers: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, comma separated."""
    topic_prefix: str = ""
    """Prepended to every topic name, so several stacks can share one broker."""
    partitions: int = 3
    """Partitions per topic when driftline creates them."""

    mlflow_tracking_uri: str = ""
    """Empty means a sqlite store under `home`."""
    mlflow_artifacts: str = ""
    """Empty means a folder under `home`."""
    mlflow_experiment: str = "driftline"
    default_model: str = "sentiment_logreg_tfidf"
    """Registered model served when a request names no model (issue: experiments replace it)."""
    default_alias: str = "champion"
    model_cache_size: int = 8
    """Model versions a process keeps loaded (least recently used ones are unloaded)."""
    model_refresh_seconds: float = 10.0
    """How often a flow re-resolves an alias, so a promotion is picked up without a restart."""
    threshold: float = 0.5
    """Decision threshold: label = 1 when P(y=1) >= threshold."""

    lake_catalog: str = ""
    """DuckLake catalog: `sqlite:<path>` (default, under `home`) or `postgres:<dsn>`."""
    lake_data_path: str = ""
    """Where DuckLake writes Parquet files; a folder (default, under `home`) or `s3://...`."""
    lake_encrypted: bool = True
    lake_batch_size: int = 1000
    """The lake writer commits when this many rows are buffered..."""
    lake_batch_seconds: float = 1.0
    """...or when the oldest buffered row is this old, whichever comes first."""
    lake_compact_seconds: float = 300.0
    """How often the lake writer merges its small files (0: never; `driftline lake compact`)."""

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    inference_timeout: float = 10.0
    """Seconds the gateway waits for a result before answering 504 with the inference id."""
    publish_timeout: float = 3.0
    """Seconds the gateway waits for the broker to acknowledge a message before answering 503."""
    result_cache_size: int = 100_000
    """Results the gateway keeps in memory for `GET /inference/{id}`."""

    default_experiment: str = "default"
    """Experiment that serves requests naming none; created from the registry on first use."""
    experiment_refresh_seconds: float = 3.0
    """How often the inference flow re-reads the experiment store, so edits need no restart."""
    feedback_ttl_seconds: float = 3600.0
    """Processing time the feedback join holds a result (and feedback waiting for its result)."""
    ab_report_seconds: float = 2.0
    """The A/B flow emits an experiment's report at most this often (and only when it changed)."""
    ab_alpha: float = 0.05
    """Type I error bound of the always-valid sequential test between arms."""

    flow_batch_size: int = 500
    """Most messages a flow takes from one partition per poll (the micro-batch for scoring)."""
    snapshot_seconds: float = 1.0
    """Bytewax recovery snapshot interval: what a crash may replay (sinks de-duplicate)."""

    monitor_window_seconds: float = 3600.0
    """Event-time length of the monitor's sliding window (backfilled simulations: 604800, 7 d)."""
    monitor_slide_seconds: float = 60.0
    """One drift report per model per slide (backfilled simulations: 86400, daily)."""
    monitor_lateness_seconds: float = 30.0
    """Allowed lateness: a window is emitted once the newest event time is this far past its end;
    results older than that go to the dead letters."""
    monitor_idle_seconds: float = 300.0
    """After this much wall time without results for a model, its watermark moves on with the
    wall clock, so its last windows are emitted even if traffic stops (0: only events move it)."""
    monitor_ks_bins: int = 1000
    """Histogram bins of the sliding KS (D is within about 1/bins of the exact D)."""
    monitor_domain_rows: int = 500
    """Most rows per side the domain classifier trains on per emission (bounds its cost)."""
    monitor_domain_every: int = 1
    """Run the domain classifier on every k-th emission only (the others report no AUC)."""
    monitor_min_feedback: int = 30
    """Inferences with feedback a window needs before feedback F1 may contradict CBPE."""
    monitor_contradiction_tolerance: float = 0.1
    """|feedback F1 - CBPE F1| above this flags a contradiction."""
    monitor_change_detector: str = "adwin"
    """River detector on the per-event error stream: `adwin` or `page_hinkley`."""
    alert_ks_d: float = 0.2
    """Alert when the prediction-drift KS D exceeds this."""
    alert_domain_auc: float = 0.6
    """Alert when the domain AUC exceeds this and its null threshold."""
    alert_f1_drop: float = 0.1
    """Alert when the CBPE F1 falls this far below the reference F1."""
    alert_brier: float = 0.25
    """Alert when the feedback Brier score exceeds this."""

    @property
    def broker_list(self) -> list[str]:
        return [b.strip() for b in self.brokers.split(",") if b.strip()]

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str:
        return self.mlflow_artifacts or str(self.home / "mlflow" / "artifacts")

    @property
    def catalog(self) -> str:
        return self.lake_catalog or f"sqlite:{self.home / 'lake' / 'catalog.sqlite'}"

    @property
    def data_path(self) -> str:
        return self.lake_data_path or str(self.home / "lake" / "data") + "/"

    @property
    def recovery_root(self) -> Path:
        return self.home / "recovery"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def experiments_db(self) -> Path:
        return self.home / "experiments.sqlite"


def _coerce(raw: str, target: Any) -> Any:
    if target is bool:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if target is Path:
        return Path(raw).expanduser().resolve()
    return target(raw)


def load(**overrides: Any) -> Settings:
    """Settings from `DRIFTLINE_<FIELD>` environment variables, then `overrides`.

    `DRIFTLINE_HOME` defaults to `./.driftline` in the working directory.
    """
    types = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = os.environ.get(PREFIX + f.name.upper())
        if raw is not None:
            values[f.name] = _coerce(raw, types[str(f.type)])
    values.setdefault("home", Path(".driftline").resolve())
    values.update(overrides)
    return Settings(**values)
