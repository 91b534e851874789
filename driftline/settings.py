"""All configuration: `DRIFTLINE_*` environment variables, validated once, grouped by part.

Every process (CLI, supervisor, gateway, flows, tests) reads its configuration through `load()`,
so one variable changes the whole system, and only configuration differs between the embedded
default and a scale-out deployment. Each group below is one part of the system; a pure unit is
given its group (`settings.monitor`), never the whole `Settings`.

A wrong value fails at load, naming the variable, instead of on the first event:

>>> load({"DRIFTLINE_MONITOR_SLIDE_SECONDS": "7200"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
driftline.settings.SettingsError: DRIFTLINE_MONITOR_SLIDE_SECONDS: must not exceed ... (7200 > 3600)

`driftline config` prints the effective values with their variables.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PREFIX = "DRIFTLINE_"


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable."""


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
    partitions: int = setting(3, "Partitions per topic when driftline creates them.", ge=1)
    fetch_wait_ms: int = setting(
        50,
        "How long the broker may hold a fetch with no data. tansu checks for data after 0, "
        "1/2, 3/4... of it, so a hop takes about half of it; shorter costs more idle fetches.",
        ge=1,
        le=5000,
    )
    replication_factor: int = setting(
        1, "Replicas per partition when driftline creates topics (3 on a Kafka cluster).", ge=1
    )

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
    snapshot_seconds: float = setting(
        1.0,
        "Bytewax recovery snapshot interval: what a crash may replay.",
        env="SNAPSHOT_SECONDS",
        gt=0,
    )
    processes: int = setting(0, "Processes per flow, one Bytewax cluster (0: the profile's).", ge=0)
    port_base: int = setting(
        2101, "First port of the flows' cluster addresses (processes > 1).", ge=1024, le=65000
    )


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
        "...and at most this many produce batches a partition: tansu lists them all on every "
        "fetch of a consumer behind the end, within the fetch wait.",
        ge=10,
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
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class Settings(BaseModel):
    """The resolved configuration; build it with `load()`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path = Field(description="Data folder: broker storage, MLflow store, lake, logs.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logs are JSON lines on stderr."
    )
    kafka: KafkaSettings = KafkaSettings()
    mlflow: MlflowSettings = MlflowSettings()
    models: ModelSettings = ModelSettings()
    lake: LakeSettings = LakeSettings()
    gateway: GatewaySettings = GatewaySettings()
    ab: ABSettings = ABSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    flows: FlowSettings = FlowSettings()
    servers: ServerSettings = ServerSettings()
    monitor: MonitorSettings = MonitorSettings()
    alerts: AlertSettings = AlertSettings()

    @property
    def recovery_root(self) -> Path:
        return self.home / "recovery"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def experiments_db(self) -> Path:
        return self.home / "experiments.sqlite"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway.host}:{self.gateway.port}"

    def to_env(self) -> dict[str, str]:
        """Every setting as the `DRIFTLINE_*` variable that reproduces it in a child process."""
        return {variable: _text(value) for variable, value, _ in describe(self)}


# Flat names (the variable without `DRIFTLINE_`, lower case) -> (group, field); `home` and
# `log_level` sit on `Settings` itself.
_TOP = {"home": PREFIX + "HOME", "log_level": PREFIX + "LOG_LEVEL"}
_FIELDS: dict[str, tuple[str, str]] = {
    cls.env_name(name).removeprefix(PREFIX).lower(): (group, name)
    for group, cls in GROUPS.items()
    for name in cls.model_fields
}
VARIABLES = sorted({*_TOP.values(), *(PREFIX + flat.upper() for flat in _FIELDS)})


def load(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from `DRIFTLINE_*` variables (of `environ`, default `os.environ`), then from
    `overrides` named like the variables (`monitor_window_seconds=20`).

    Raises `SettingsError`, naming the variable, for an unknown `DRIFTLINE_*` variable, a
    value of the wrong type or outside its range, or two values that contradict each other.
    """
    environ = os.environ if environ is None else environ
    flat: dict[str, Any] = {}
    for variable, raw in environ.items():
        if not variable.startswith(PREFIX):
            continue
        if variable not in VARIABLES:
            close = difflib.get_close_matches(variable, VARIABLES, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SettingsError(f"{variable}: unknown setting{hint} (see `driftline config`)")
        flat[variable.removeprefix(PREFIX).lower()] = raw
    for name, value in overrides.items():
        if name not in _FIELDS and name not in _TOP:
            raise SettingsError(f"unknown setting {name!r}")
        flat[name] = value
    home = Path(flat.pop("home", ".driftline")).expanduser().resolve()
    groups: dict[str, dict[str, Any]] = {group: {} for group in GROUPS}
    for name, value in flat.items():
        if name in _FIELDS:
            group, field = _FIELDS[name]
            groups[group][field] = value
    built: dict[str, Any] = {}
    for group, values in groups.items():
        try:
            built[group] = GROUPS[group](**values)
        except ValidationError as exc:
            raise SettingsError(_readable(exc, GROUPS[group])) from None
    try:
        level: dict[str, Any] = (
            {"log_level": str(flat["log_level"]).upper()} if "log_level" in flat else {}
        )
        return _with_profile_defaults(Settings(home=home, **level, **built))
    except ValidationError as exc:
        raise SettingsError(_readable(exc, None)) from None


LOCAL_S3_CREDENTIAL = "S3RVER"
"""The key id and secret of the local object store (`servers.objectstore`), fixed by s3rver."""


def _with_profile_defaults(s: Settings) -> Settings:
    """Values left empty (or 0) take the profile's: embedded keeps every store in files under
    `home`; cluster uses the servers `driftline up --profile cluster` runs on loopback."""
    servers, cluster = s.servers, s.servers.profile == "cluster"
    if cluster:
        mlflow = {"tracking_uri": f"http://127.0.0.1:{servers.mlflow_port}", "artifacts": ""}
        lake = {
            "catalog": f"postgres:dbname=lake host=127.0.0.1 port={servers.postgres_port} "
            "user=postgres",
            "data_path": "s3://lake/data/",
            "s3_endpoint": f"127.0.0.1:{servers.objectstore_port}",
            "s3_key_id": LOCAL_S3_CREDENTIAL,
            "s3_secret": LOCAL_S3_CREDENTIAL,
        }
    else:
        mlflow = {
            "tracking_uri": f"sqlite:///{s.home / 'mlflow' / 'mlflow.db'}",
            "artifacts": str(s.home / "mlflow" / "artifacts"),
        }
        lake = {
            "catalog": f"sqlite:{s.home / 'lake' / 'catalog.sqlite'}",
            "data_path": f"{s.home / 'lake' / 'data'}/",
        }
    processes = 2 if cluster else 1

    def fill(group: Group, defaults: dict[str, Any]) -> Any:
        empty = {k: v for k, v in defaults.items() if not getattr(group, k)}
        return group.model_copy(update=empty)

    resolved = s.model_copy(
        update={
            "mlflow": fill(s.mlflow, mlflow),
            "lake": fill(s.lake, lake | {"writers": processes}),
            "flows": fill(s.flows, {"processes": processes}),
            "gateway": fill(s.gateway, {"workers": processes}),
        }
    )
    if resolved.lake.writers > 1 and not resolved.lake.catalog.startswith("postgres:"):
        raise SettingsError(
            f"{LakeSettings.env_name('writers')}: {resolved.lake.writers} writers need a "
            f"PostgreSQL catalog ({LakeSettings.env_name('catalog')}); SQLite takes one committer"
        )
    return resolved


def _readable(exc: ValidationError, group: type[Group] | None) -> str:
    """Pydantic's errors, each naming its variable (validators that relate two variables name
    them in their message)."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        if message.startswith(PREFIX):
            lines.append(message)
            continue
        if group is not None and field in group.model_fields:
            name = group.env_name(field)
        else:
            name = _TOP.get(field, "configuration")
        lines.append(f"{name}: {message} (got {error.get('input')!r})")
    return "; ".join(lines)


def describe(s: Settings) -> Iterator[tuple[str, Any, str]]:
    """(variable, effective value, meaning) for every setting, in a stable order."""
    for field, variable in _TOP.items():
        yield variable, getattr(s, field), str(Settings.model_fields[field].description)
    for group, cls in GROUPS.items():
        values = getattr(s, group)
        for field, info in cls.model_fields.items():
            yield cls.env_name(field), getattr(values, field), str(info.description)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
