"""The settings of each part of driftline: one group per part, each field one variable.

Each field is `DRIFTLINE_<ENV_PREFIX><FIELD>` unless `setting(env=...)` names it otherwise; its
description is what `driftline config` prints.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

PREFIX = "DRIFTLINE_"


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable."""

    __module__ = "driftline.settings"  # where it is public


def setting(default: Any, description: str, *, env: str | None = None, **limits: Any) -> Any:
    """A field with its meaning, its limits and, when it breaks the group's naming, its
    variable's name (without the `DRIFTLINE_` prefix)."""
    extra: dict[str, Any] | None = {"env": env} if env else None
    return Field(default, description=description, json_schema_extra=extra, **limits)


class Group(BaseModel):
    """One part's settings; each field is `DRIFTLINE_<ENV_PREFIX><FIELD>` unless it says."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)
    ENV_PREFIX: ClassVar[str] = ""

    @classmethod
    def env_name(cls, field: str) -> str:
        extra = cls.model_fields[field].json_schema_extra
        own = extra.get("env") if isinstance(extra, dict) else None
        return PREFIX + str(own or (cls.ENV_PREFIX + field).upper())


class KafkaSettings(Group):
    brokers: str = setting("127.0.0.1:9092", "Kafka bootstrap servers, comma separated.")
    topic_prefix: str = setting("", "Prepended to every topic name (several stacks, one broker).")
    partitions: int = setting(
        0,
        "Partitions per topic when driftline creates them (0: the profile's, 1 embedded: every "
        "partition costs idle fetches; 4 cluster: work for 2 processes).",
        ge=0,
    )
    fetch_wait_ms: int = setting(
        50,
        "How long the broker may hold a fetch with no data. tansu checks for data after 0, "
        "1/2, 3/4... of it, so a hop takes about half of it; shorter costs more idle fetches.",
        ge=1,
        le=5000,
    )
    request_fetch_wait_ms: int = setting(
        10,
        "The fetch wait of the request path's consumers while requests come (the gateway's "
        "results, the inference flow's requests): each hop of a request waits about half of it; "
        "idle, they stop fetching or fetch slower (0: DRIFTLINE_FETCH_WAIT_MS).",
        ge=0,
        le=5000,
    )
    replication_factor: int = setting(
        1, "Replicas per partition when driftline creates topics (3 on a Kafka cluster).", ge=1
    )

    @property
    def request_path_fetch_wait_ms(self) -> int:
        return self.request_fetch_wait_ms or self.fetch_wait_ms

    @property
    def broker_list(self) -> list[str]:
        return [b.strip() for b in self.brokers.split(",") if b.strip()]


class MlflowSettings(Group):
    ENV_PREFIX = "MLFLOW_"
    tracking_uri: str = setting("", "Tracking and registry store; empty: sqlite under home.")
    artifacts: str = setting("", "Artifact location of new experiments; empty: under home.")
    experiment: str = setting("driftline", "MLflow experiment the training runs go to.")


class ModelSettings(Group):
    ENV_PREFIX = "MODEL_"
    default_model: str = setting(
        "sentiment_logreg_tfidf",
        "Registered model the default experiment serves.",
        env="DEFAULT_MODEL",
    )
    default_alias: str = setting("champion", "Alias of the served model.", env="DEFAULT_ALIAS")
    threshold: float = setting(
        0.5, "Decision threshold: label 1 when P(y=1) >= it.", env="THRESHOLD", gt=0, lt=1
    )
    cache_size: int = setting(8, "Model versions a process keeps loaded (LRU).", ge=1)
    refresh_seconds: float = setting(10.0, "How often an alias is re-resolved.", gt=0)
    threads: int = setting(
        1,
        "Threads of one scoring call in the flows (`n_jobs` of the estimators that have one): "
        "the flows score micro-batches on cores they share with each other.",
        ge=1,
    )
    bootstrap_sample: int = setting(
        0, "Rows the first `up` trains its quick models on (0: every row).", ge=0
    )


class LakeSettings(Group):
    ENV_PREFIX = "LAKE_"
    catalog: str = setting(
        "", "DuckLake catalog: sqlite:<path> (empty: under home) or postgres:<dsn>."
    )
    data_path: str = setting(
        "", "Where the Parquet files go: a folder (empty: under home) or s3://."
    )
    encrypted: bool = setting(True, "Encrypt the Parquet files (keys live in the catalog).")
    batch_size: int = setting(
        1000, "The lake writer commits once this many rows are buffered...", ge=1
    )
    batch_seconds: float = setting(1.0, "...or once the oldest buffered row is this old.", gt=0)
    compact_seconds: float = setting(
        300.0, "How often the writer merges small files (0: never).", ge=0
    )
    writers: int = setting(
        0,
        "Lake writer partitions committing at once (0: the profile's; >1 needs PostgreSQL).",
        ge=0,
    )
    s3_endpoint: str = setting("", "host:port of the S3 storage of an s3:// data path.")
    s3_key_id: str = setting("", "Key id for that storage.")
    s3_secret: str = setting("", "Secret for that storage.")


class GatewaySettings(Group):
    ENV_PREFIX = "GATEWAY_"
    host: str = setting("127.0.0.1", "Address the gateway listens on.")
    port: int = setting(8000, "Port the gateway listens on.", ge=1, le=65535)
    inference_timeout: float = setting(
        10.0, "Seconds to wait for a result before 504.", env="INFERENCE_TIMEOUT", gt=0
    )
    publish_timeout: float = setting(
        3.0, "Seconds for the broker to acknowledge before 503.", env="PUBLISH_TIMEOUT", gt=0
    )
    result_cache_size: int = setting(
        100_000, "Results kept in memory for GET /inference/{id}.", env="RESULT_CACHE_SIZE", ge=1
    )
    workers: int = setting(0, "Gateway processes on the one port (0: the profile's).", ge=0)
    linger_ms: int = setting(
        5,
        "How long the gateway's producer gathers requests into one batch: every batch costs "
        "the broker two writes and each reader a read (at 200/s, 5 ms against 2: a sixth "
        "fewer log store requests, a fifth less broker CPU, latency unchanged within noise).",
        ge=0,
        le=1000,
    )
    keep_alive_seconds: int = setting(
        75,
        "How long an idle keep-alive connection stays open (uvicorn's default is 5): longer "
        "than a load balancer's idle timeout (60 s is common), as nginx's 75, so the gateway is "
        "never the side that closes a connection a client is about to reuse.",
        ge=1,
        le=3600,
    )
    access_log: bool = setting(
        True,
        "A log line per request (uvicorn's access log: ~11% of the gateway's CPU at 1,250 "
        "requests/s, py-spy).",
    )
    api_keys: str = setting(
        "",
        "API keys, comma separated (each 16+ characters, no spaces): required, as "
        "`Authorization: Bearer <key>` or `X-API-Key`, on every request that changes state "
        "(PUT/DELETE /experiments). Empty: the API is open (loopback only, see ALLOW_OPEN).",
        env="API_KEYS",
        repr=False,
    )
    api_keys_for_scoring: bool = setting(
        False,
        "Require a key on scoring and feedback too (POST/PATCH /inference, POST /inferences, "
        "GET /inference/{id}); needs DRIFTLINE_API_KEYS.",
        env="API_KEYS_FOR_SCORING",
    )
    allow_open: bool = setting(
        False,
        "Let the gateway listen on a non-loopback host with no API keys (open to anyone who can "
        "reach it); without it the gateway refuses to start so.",
    )
    max_body_bytes: int = setting(
        1_048_576, "Largest request body the gateway reads; larger ones get 413.", ge=1024
    )

    MIN_KEY_LENGTH: ClassVar[int] = 16

    @property
    def keys(self) -> tuple[str, ...]:
        """The configured API keys (empty: the API is open)."""
        return tuple(k.strip() for k in self.api_keys.split(",") if k.strip())

    @property
    def loopback(self) -> bool:
        """Whether the gateway listens on a loopback address only."""
        host = self.host.strip("[]").lower()
        return host == "localhost" or host == "::1" or host.startswith("127.")

    def open_exposure(self) -> str | None:
        """Why the gateway must not start as configured (open on a non-loopback host), or
        None when it may."""
        if self.keys or self.loopback or self.allow_open:
            return None
        return (
            f"the gateway would listen on {self.host} with no API keys, open to anyone who can "
            f"reach it: set {self.env_name('api_keys')}, or {self.env_name('allow_open')}=true "
            "to run it open on purpose"
        )

    @model_validator(mode="after")
    def _keys_are_usable(self) -> Self:
        name = self.env_name("api_keys")
        for key in self.keys:
            if len(key) < self.MIN_KEY_LENGTH or not key.isprintable() or " " in key:
                # The message never repeats a key: settings errors are printed and logged.
                raise ValueError(
                    f"{name}: every key must be at least {self.MIN_KEY_LENGTH} printable "
                    "characters without spaces"
                )
        if self.api_keys_for_scoring and not self.keys:
            raise ValueError(f"{self.env_name('api_keys_for_scoring')}: needs {name} to be set")
        return self


class ABSettings(Group):
    ENV_PREFIX = "AB_"
    default_experiment: str = setting(
        "default", "Experiment for requests that name none.", env="DEFAULT_EXPERIMENT", min_length=1
    )
    experiment_refresh_seconds: float = setting(
        3.0,
        "How often the inference flow re-reads the experiments.",
        env="EXPERIMENT_REFRESH_SECONDS",
        gt=0,
    )
    report_seconds: float = setting(
        2.0, "An experiment's report goes out at most this often.", gt=0
    )
    alpha: float = setting(0.05, "Type I error bound of the sequential test.", gt=0, lt=1)


class FeedbackSettings(Group):
    ENV_PREFIX = "FEEDBACK_"
    ttl_seconds: float = setting(
        3600.0, "How long the join holds a result, or feedback waiting for one.", gt=0
    )


class FlowSettings(Group):
    ENV_PREFIX = "FLOW_"
    batch_size: int = setting(
        500, "Most messages per partition per poll (scoring micro-batch).", ge=1
    )
    snapshot_seconds: int = setting(
        1,
        "Bytewax recovery snapshot interval, whole seconds (what `bytewax.run` accepts): what "
        "a crash may replay.",
        env="SNAPSHOT_SECONDS",
        ge=1,
    )
    sharded_snapshot_seconds: int = setting(
        10,
        "The same for the flows keyed by id shard (feedback, A/B): Bytewax's recovery store "
        "runs, at every snapshot, a query over every key it has stored (their 16,384 shards: "
        "~40 ms a time), so these snapshot less often and replay more after a crash.",
        env="SHARDED_SNAPSHOT_SECONDS",
        ge=1,
    )
    idle_timer_slack_ms: float = setting(
        200.0,
        "How late an idle flow's worker may wake up (Linux timer slack): Bytewax wakes it every "
        "1 ms even with nothing to do. The first message after 2 s of quiet may wait this much "
        "longer; a busy worker gets the default back. Flows off the request path.",
        ge=0,
        le=1000,
    )
    request_idle_timer_slack_ms: float = setting(
        20.0, "The same for the inference flow, which a caller waits for.", ge=0, le=1000
    )
    busy_timer_slack_ms: float = setting(
        20.0,
        "How late a flow off the request path may wake up while messages come but it has "
        "nothing to do at the moment (it takes them every DRIFTLINE_FLOW_TAKE_EVERY_SECONDS "
        "while they trickle in): its output may come this much later. At 200 requests/s "
        "these flows took 16-22 points of a core at 20 against 23-27 at 0 (the default "
        "50 us; bench.compare, two rounds).",
        ge=0,
        le=1000,
    )
    idle_probe_seconds: float = setting(
        2.0,
        "A flow's source stops fetching after 2 s without a message and then asks the broker "
        "for its partitions' end offsets this often (0: fetch all the time). Flows off the "
        "request path. Until it looks, the log store lists what it has not read on every "
        "fetch of every reader: after a pause, listings grew for 3-5 s at 4 s, 1-2 s at 2; "
        "1 s cost the idle stack ~0.5-1 point of a core more.",
        ge=0,
    )
    take_every_seconds: float = setting(
        0.2,
        "While messages trickle in (under a batch a second), a flow off the request path "
        "takes them at most this often, with a consumer that does not fetch ahead: every fetch "
        "that finds something new costs tansu a listing of the partition. Faster, it reads "
        "with its main consumer, fetching ahead (0: always that one).",
        ge=0,
        le=5,
    )
    request_idle_probe_seconds: float = setting(
        0.0,
        "The same for the inference flow (0: it fetches all the time; at 0.1 s the looks cost "
        "the broker more than its fetches, and a caller would wait up to that long).",
        ge=0,
    )
    request_idle_fetch_wait_ms: int = setting(
        150,
        "While idle (2 s without a request), the inference flow fetches with this wait instead "
        "of DRIFTLINE_FETCH_WAIT_MS: fewer fetches for the broker; the first request after a "
        "quiet spell may wait up to half of it for its fetch (0: no change).",
        ge=0,
        le=5000,
    )
    request_idle_wait_ms: int = setting(
        100,
        "While idle, the inference flow's worker waits for a request in its consumer up to this "
        "long at a time instead of waking every few ms: it sleeps until one comes. Only when "
        "the flow runs as one process (a waiting worker would hold up items the other workers "
        "of a cluster send it; 0: never).",
        ge=0,
        le=1000,
    )
    request_busy_wait_ms: float = setting(
        2.0,
        "While requests come, the inference flow's worker waits for the next one in its "
        "consumer up to this long at a time instead of sleeping 1-2 ms between polls: it wakes "
        "when one comes (at 200/s, p50 a median 26 ms against 28 at 0; bench.compare, two "
        "rounds). Only when the flow runs as one process (0: never).",
        ge=0,
        le=100,
    )
    processes: int = setting(0, "Processes per flow, one Bytewax cluster (0: the profile's).", ge=0)
    port_base: int = setting(
        2101, "First port of the flows' cluster addresses (processes > 1).", ge=1024, le=65000
    )
    metrics_port_base: int = setting(
        9400,
        "Prometheus /metrics of the flows: process p of the i-th flow (inference, lakewriter, "
        "feedback, ab, monitor, rollout) listens on this + 10*i + p (0: no metrics endpoint).",
        env="METRICS_PORT_BASE",
        ge=0,
        le=65000,
    )

    METRICS_PORTS_PER_FLOW: ClassVar[int] = 10
    FLOW_COUNT: ClassVar[int] = 6
    """Flows `driftline up` runs (`app.topology.FLOWS`)."""
    METRICS_PORTS: ClassVar[int] = 10 * FLOW_COUNT
    """Ports the metrics endpoints may take from `metrics_port_base`: 10 per flow."""

    @model_validator(mode="after")
    def _metrics_ports_fit(self) -> Self:
        base = self.metrics_port_base
        if not base:
            return self
        name = self.env_name("metrics_port_base")
        if base < 1024:
            raise ValueError(f"{name}: must be 0 (off) or at least 1024 (got {base})")
        if self.processes > self.METRICS_PORTS_PER_FLOW:
            raise ValueError(
                f"{self.env_name('processes')}: at most {self.METRICS_PORTS_PER_FLOW} processes "
                f"per flow while {name} is set (got {self.processes})"
            )
        ours = range(base, base + self.METRICS_PORTS)
        cluster = range(self.port_base, self.port_base + self.FLOW_COUNT * max(self.processes, 2))
        if ours.start < cluster.stop and cluster.start < ours.stop:
            raise ValueError(
                f"{name}: its ports {ours.start}-{ours.stop - 1} overlap the flows' cluster "
                f"addresses from {self.env_name('port_base')} ({self.port_base})"
            )
        return self


class ServerSettings(Group):
    """What `driftline up` runs beside the flows and the gateway."""

    profile: Literal["embedded", "cluster"] = setting(
        "embedded",
        "embedded: broker on local object storage, SQLite catalog, MLflow files; cluster: "
        "adds PostgreSQL, an MLflow server, S3 lake files, 2 processes per flow and gateway.",
    )
    broker_storage: Literal["disk", "memory"] = setting(
        "disk", "Where the local broker keeps its log: on disk (the log store) or in memory."
    )
    logstore_port: int = setting(9310, "Port of the broker's log store.", ge=1, le=65535)
    broker_retention_seconds: float = setting(
        3600.0, "The broker keeps a partition's messages this long...", gt=0
    )
    broker_max_batches: int = setting(
        1000,
        "...and at most this many produce batches a partition no flow reads (a flow's partitions "
        "keep what it may still read): tansu lists them all on every fetch of a consumer behind "
        "the end, within the fetch wait.",
        ge=10,
    )
    broker_keep_read_batches: int = setting(
        20,
        "A partition the flows read keeps only what a restart of one of them may read again, "
        "lists only what one of them has not read yet, and always its newest this many "
        "batches: tansu lists them all on every fetch.",
        ge=1,
    )
    objectstore_port: int = setting(
        9300, "Port of the object store for lake files and artifacts (cluster).", ge=1, le=65535
    )
    postgres_port: int = setting(5433, "Port of the local PostgreSQL (cluster).", ge=1, le=65535)
    mlflow_port: int = setting(5050, "Port of the local MLflow server (cluster).", ge=1, le=65535)


class MonitorSettings(Group):
    ENV_PREFIX = "MONITOR_"
    window_seconds: float = setting(3600.0, "Event-time length of the sliding window.", gt=0)
    slide_seconds: float = setting(60.0, "One drift report per model per slide.", gt=0)
    lateness_seconds: float = setting(
        30.0, "Allowed lateness; older results are dead letters.", ge=0
    )
    idle_seconds: float = setting(
        300.0, "Wall time without results after which windows close by the clock (0: never).", ge=0
    )
    ks_bins: int = setting(1000, "Histogram bins of the sliding KS (error about 1/bins).", ge=10)
    domain_rows: int = setting(500, "Most rows per side the domain classifier trains on.", ge=10)
    domain_every: int = setting(1, "Run the domain classifier on every k-th emission.", ge=1)
    min_feedback: int = setting(
        30, "Labelled inferences before feedback may contradict CBPE.", ge=1
    )
    contradiction_tolerance: float = setting(
        0.1, "|feedback F1 - CBPE F1| above this is a contradiction.", gt=0, le=1
    )
    change_detector: Literal["adwin", "page_hinkley"] = setting(
        "adwin", "River detector on the per-event error stream."
    )

    @model_validator(mode="after")
    def _slide_fits_window(self) -> Self:
        if self.slide_seconds > self.window_seconds:
            raise ValueError(
                f"{self.env_name('slide_seconds')}: must not exceed "
                f"{self.env_name('window_seconds')} "
                f"({self.slide_seconds:g} > {self.window_seconds:g})"
            )
        return self


class AlertSettings(Group):
    ENV_PREFIX = "ALERT_"
    ks_d: float = setting(0.2, "Alert when the prediction-drift KS D exceeds this.", gt=0, le=1)
    domain_auc: float = setting(
        0.6, "Alert when the domain AUC exceeds this and its null threshold.", ge=0.5, le=1
    )
    f1_drop: float = setting(0.1, "Alert when CBPE F1 falls this far below the reference F1.", gt=0)
    brier: float = setting(0.25, "Alert when the feedback Brier score exceeds this.", gt=0, le=1)
    rule: Literal["fixed", "persistence", "cusum"] = setting(
        "cusum",
        "How KS and domain AUC alert: `cusum` (CUSUM on each window's null z score), "
        "`persistence` (ALERT_PERSISTENCE windows in a row significant at ALERT_ALPHA) or "
        "`fixed` (the levels ALERT_KS_D and ALERT_DOMAIN_AUC). See bench/detectors.py.",
    )
    alpha: float = setting(
        0.01, "Per-window significance level of the `persistence` rule.", gt=0, lt=0.5
    )
    persistence: int = setting(
        3, "Consecutive significant windows before the `persistence` rule alerts.", ge=1
    )
    cusum_drift: float = setting(
        1.0, "CUSUM allowance, in null sd per window (about half the shift to detect).", ge=0
    )
    cusum_threshold: float = setting(
        12.0, "The `cusum` rule alerts when the CUSUM of window z scores exceeds this.", gt=0
    )


# --- retraining on drift (issue 13, part 3) ---
class RetrainSettings(Group):
    ENV_PREFIX = "RETRAIN_"
    metrics: str = setting(
        "ks_d,mmd,domain_auc,brier",
        "Alert metrics that request a retraining, comma separated (empty: never retrain).",
    )
    cooldown_seconds: float = setting(
        3600.0,
        "Event time after a model's retraining request during which its further alerts "
        "request none (one drift episode, one request).",
        ge=0,
    )
    min_feedback: int = setting(
        3, "Feedback scores an inference needs to join the training set (mean as its label).", ge=1
    )
    sample: int = setting(
        0, "Most lake training rows a retraining reads, seeded (0: all of them).", ge=0
    )
    alias: str = setting("challenger", "Alias a retrained version gets.", min_length=1)
    shadow_sample: float = setting(
        1.0, "Share of requests the retrained version scores as a shadow arm.", ge=0, le=1
    )

    @property
    def metric_set(self) -> frozenset[str]:
        return frozenset(m.strip() for m in self.metrics.split(",") if m.strip())


GROUPS: dict[str, type[Group]] = {
    "kafka": KafkaSettings,
    "mlflow": MlflowSettings,
    "models": ModelSettings,
    "lake": LakeSettings,
    "gateway": GatewaySettings,
    "ab": ABSettings,
    "feedback": FeedbackSettings,
    "flows": FlowSettings,
    "servers": ServerSettings,
    "monitor": MonitorSettings,
    "alerts": AlertSettings,
    "retrain": RetrainSettings,
}
