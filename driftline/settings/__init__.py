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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from driftline.settings.groups import (
    GROUPS,
    PREFIX,
    ABSettings,
    AlertSettings,
    FeedbackSettings,
    FlowSettings,
    GatewaySettings,
    Group,
    KafkaSettings,
    LakeSettings,
    MlflowSettings,
    ModelSettings,
    MonitorSettings,
    RetrainSettings,
    ServerSettings,
    SettingsError,
)

__all__ = [
    "GROUPS",
    "VARIABLES",
    "ABSettings",
    "AlertSettings",
    "FeedbackSettings",
    "FlowSettings",
    "GatewaySettings",
    "KafkaSettings",
    "LakeSettings",
    "MlflowSettings",
    "ModelSettings",
    "MonitorSettings",
    "RetrainSettings",
    "ServerSettings",
    "Settings",
    "SettingsError",
    "describe",
    "load",
]


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
    retrain: RetrainSettings = RetrainSettings()

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
            "kafka": fill(s.kafka, {"partitions": 4 if cluster else 1}),
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
