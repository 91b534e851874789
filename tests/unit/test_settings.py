"""Configuration: environment variables, validation at load, and how errors name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import cli
from broker.clients import consumer_config
from driftline import settings
from driftline.settings import SettingsError


def test_environment_overrides_defaults(tmp_path: Path) -> None:
    s = settings.load(
        {
            "DRIFTLINE_HOME": str(tmp_path),
            "DRIFTLINE_PARTITIONS": "6",
            "DRIFTLINE_LAKE_ENCRYPTED": "false",
            "DRIFTLINE_LAKE_BATCH_SECONDS": "2.5",
            "DRIFTLINE_MONITOR_CHANGE_DETECTOR": "page_hinkley",
            "OTHER_TOOL_SETTING": "not ours: ignored",
        }
    )
    assert (s.home, s.kafka.partitions, s.lake.encrypted, s.lake.batch_seconds) == (
        tmp_path.resolve(),
        6,
        False,
        2.5,
    )
    assert s.monitor.change_detector == "page_hinkley"


def test_stores_default_under_home(tmp_path: Path) -> None:
    s = settings.load({}, home=tmp_path)
    assert s.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    assert s.lake.catalog == f"sqlite:{tmp_path / 'lake' / 'catalog.sqlite'}"
    assert s.lake.data_path.startswith(str(tmp_path))


def test_explicit_stores_win(tmp_path: Path) -> None:
    s = settings.load(
        {}, home=tmp_path, lake_catalog="postgres:dbname=lake", lake_data_path="s3://b/"
    )
    assert (s.lake.catalog, s.lake.data_path) == ("postgres:dbname=lake", "s3://b/")


def test_broker_list_splits_and_trims() -> None:
    assert settings.load({}, brokers="a:1, b:2,").kafka.broker_list == ["a:1", "b:2"]


@pytest.mark.parametrize(
    ("environ", "request_path", "elsewhere"),
    [
        ({}, 10, 50),
        ({"DRIFTLINE_FETCH_WAIT_MS": "200", "DRIFTLINE_REQUEST_FETCH_WAIT_MS": "20"}, 20, 200),
        ({"DRIFTLINE_FETCH_WAIT_MS": "200", "DRIFTLINE_REQUEST_FETCH_WAIT_MS": "0"}, 200, 200),
    ],
)
def test_consumers_a_caller_waits_for_fetch_with_the_request_path_wait(
    environ: dict[str, str], request_path: int, elsewhere: int
) -> None:
    s = settings.load(environ)
    waits = [
        consumer_config(s, "g", on_request_path=path)["fetch.wait.max.ms"] for path in (True, False)
    ]
    assert waits == [request_path, elsewhere]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DRIFTLINE_PARTITIONS", "three", "valid integer"),
        ("DRIFTLINE_PARTITIONS", "-1", "greater than or equal to 0"),
        ("DRIFTLINE_GATEWAY_PORT", "70000", "less than or equal to 65535"),
        ("DRIFTLINE_MONITOR_CHANGE_DETECTOR", "cusum", "'adwin' or 'page_hinkley'"),
        ("DRIFTLINE_AB_ALPHA", "1.5", "less than 1"),
        ("DRIFTLINE_LAKE_ENCRYPTED", "maybe", "valid boolean"),
        ("DRIFTLINE_LOG_LEVEL", "loud", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        # bytewax.run takes whole seconds: 0.5 made every flow exit with a usage error
        ("DRIFTLINE_SNAPSHOT_SECONDS", "0.5", "valid integer"),
    ],
)
def test_a_wrong_value_fails_at_load_naming_the_variable(
    variable: str, value: str, says: str
) -> None:
    with pytest.raises(SettingsError) as error:
        settings.load({variable: value})
    assert str(error.value).startswith(f"{variable}: ") and says in str(error.value)
    assert repr(value.upper() if variable.endswith("LOG_LEVEL") else value) in str(error.value)


def test_related_values_are_checked_together() -> None:
    with pytest.raises(SettingsError, match="DRIFTLINE_MONITOR_SLIDE_SECONDS: must not exceed "):
        settings.load({"DRIFTLINE_MONITOR_SLIDE_SECONDS": "7200"})
    # The same slide fits a longer window.
    s = settings.load(
        {"DRIFTLINE_MONITOR_SLIDE_SECONDS": "7200", "DRIFTLINE_MONITOR_WINDOW_SECONDS": "86400"}
    )
    assert s.monitor.slide_seconds == 7200


def test_an_unknown_driftline_variable_is_an_error_with_a_suggestion() -> None:
    with pytest.raises(SettingsError) as error:
        settings.load({"DRIFTLINE_MONITOR_WINDOW_SECOND": "60"})
    assert "did you mean DRIFTLINE_MONITOR_WINDOW_SECONDS?" in str(error.value)
    with pytest.raises(SettingsError, match="unknown setting 'window'"):
        settings.load({}, window=60)


def test_to_env_reproduces_the_same_settings(tmp_path: Path) -> None:
    s = settings.load({}, home=tmp_path, monitor_window_seconds=120, lake_encrypted=False)
    assert settings.load(s.to_env()) == s
    assert set(s.to_env()) == set(settings.VARIABLES)


def test_config_command_prints_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config"]) == 0
    printed = capsys.readouterr().out
    assert all(variable in printed for variable in settings.VARIABLES)
    assert cli.main(["config", "--env"]) == 0
    assert "DRIFTLINE_MONITOR_WINDOW_SECONDS=3600.0" in capsys.readouterr().out.splitlines()


def test_a_wrong_setting_stops_the_cli_before_it_does_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DRIFTLINE_MONITOR_SLIDE_SECONDS", "-1")
    assert cli.main(["up"]) == 2
    assert "DRIFTLINE_MONITOR_SLIDE_SECONDS" in capsys.readouterr().err
