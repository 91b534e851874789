"""API keys: settings, the key check, and the routes they guard (gateway on a fake bridge)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import HTTPException

from app import cli, supervisor
from driftline import settings
from driftline.settings import SettingsError
from gateway.auth import check, matches
from tests.unit.gateway_fakes import call, fake_app, logged

KEY = "k3y-0123456789abcdef"
OTHER = "0th3r-0123456789abcdef"
EXPERIMENT = {"arms": [{"name": "A", "model": "m", "alias": "champion", "weight": 1}]}


@pytest.fixture()
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    return fake_app(tmp_path, monkeypatch, api_keys=f"{OTHER},{KEY}")


# ---- settings -----------------------------------------------------------------------------


def test_keys_are_a_comma_separated_list() -> None:
    s = settings.load({"DRIFTLINE_API_KEYS": f" {KEY} , {OTHER},"})
    assert s.gateway.keys == (KEY, OTHER)
    assert KEY not in repr(s)  # settings may be logged: the keys are not in their repr
    assert settings.load({}).gateway.keys == ()


@pytest.mark.parametrize("bad", ["short", "has a space in it 0123456789"])
def test_weak_or_malformed_keys_stop_the_configuration_without_showing_them(bad: str) -> None:
    with pytest.raises(SettingsError, match="DRIFTLINE_API_KEYS") as raised:
        settings.load({"DRIFTLINE_API_KEYS": f"{KEY},{bad}"})
    assert bad not in str(raised.value) and KEY not in str(raised.value)


def test_keys_for_scoring_need_keys() -> None:
    with pytest.raises(SettingsError, match="DRIFTLINE_API_KEYS_FOR_SCORING: needs"):
        settings.load({"DRIFTLINE_API_KEYS_FOR_SCORING": "true"})
    s = settings.load({"DRIFTLINE_API_KEYS_FOR_SCORING": "true", "DRIFTLINE_API_KEYS": KEY})
    assert s.gateway.api_keys_for_scoring


def test_an_open_gateway_is_refused_off_loopback_unless_allowed() -> None:
    assert settings.load({}).gateway.open_exposure() is None  # 127.0.0.1
    assert settings.load({}, gateway_host="localhost").gateway.open_exposure() is None
    exposed = settings.load({}, gateway_host="0.0.0.0").gateway
    assert "DRIFTLINE_API_KEYS" in str(exposed.open_exposure())
    assert "DRIFTLINE_GATEWAY_ALLOW_OPEN" in str(exposed.open_exposure())
    assert settings.load({}, gateway_host="0.0.0.0", api_keys=KEY).gateway.open_exposure() is None
    allowed = settings.load({"DRIFTLINE_GATEWAY_ALLOW_OPEN": "true"}, gateway_host="0.0.0.0")
    assert allowed.gateway.open_exposure() is None


def test_driftline_gateway_and_up_refuse_to_start_open_off_loopback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    exposed = settings.load({}, gateway_host="0.0.0.0")
    assert cli.cmd_gateway(exposed, argparse.Namespace()) == 2
    up = argparse.Namespace(profile=None, servers_only=False)
    assert cli.cmd_up(exposed, up) == 2
    assert "DRIFTLINE_API_KEYS" in capsys.readouterr().err


def test_config_never_prints_the_keys(capsys: pytest.CaptureFixture[str]) -> None:
    s = settings.load({}, api_keys=f"{KEY},{OTHER}")
    cli.cmd_config(s, argparse.Namespace(env=False))
    out = capsys.readouterr().out
    assert KEY not in out and OTHER not in out
    assert any(
        line.startswith("DRIFTLINE_API_KEYS ") and "(2 set)" in line for line in out.split("\n")
    )


def test_the_banner_says_whether_the_api_is_open() -> None:
    assert supervisor.api_access(settings.load({})).startswith(
        "API open: no DRIFTLINE_API_KEYS set"
    )
    keyed = supervisor.api_access(settings.load({}, api_keys=KEY, api_keys_for_scoring=True))
    assert keyed.startswith("API keys: 1 set") and "score" in keyed and KEY not in keyed


# ---- the check ----------------------------------------------------------------------------


def test_matches_compares_with_every_key() -> None:
    assert matches(KEY, (OTHER, KEY)) and matches(OTHER, (OTHER, KEY))
    assert not matches(KEY[:-1], (KEY,)) and not matches("", (KEY,))
    assert not matches(KEY + "x", (KEY,))


def test_check_is_401_without_a_key_and_403_with_a_wrong_one() -> None:
    with pytest.raises(HTTPException) as missing:
        check((KEY,), None, None)
    assert missing.value.status_code == 401
    assert missing.value.headers == {"WWW-Authenticate": 'Bearer realm="driftline"'}
    with pytest.raises(HTTPException) as wrong:
        check((KEY,), None, OTHER)
    assert wrong.value.status_code == 403 and OTHER not in str(wrong.value.detail)
    with pytest.raises(HTTPException):  # a right key does not excuse a wrong one beside it
        check((KEY,), KEY, OTHER)
    check((KEY,), KEY, None)
    check((KEY,), None, KEY)


# ---- through the gateway ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_changing_an_experiment_needs_a_key(keyed: Any, method: str) -> None:
    body = {"json": EXPERIMENT} if method == "PUT" else {}
    missing = call(keyed, method, "/experiments/e", **body)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="driftline"'
    assert "API key is required" in missing.json()["detail"]
    wrong = call(keyed, method, "/experiments/e", headers={"X-API-Key": "n" * 20}, **body)
    assert wrong.status_code == 403
    bearer = call(keyed, "PUT", "/experiments/e", json=EXPERIMENT, headers=auth(KEY))
    assert bearer.status_code == 200, bearer.text
    done = call(keyed, method, "/experiments/e", headers={"X-API-Key": OTHER}, **body)
    assert done.status_code == (200 if method == "PUT" else 204), done.text


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_reads_scoring_and_feedback_stay_open_by_default(keyed: Any) -> None:
    assert call(keyed, "GET", "/experiments").status_code == 200
    assert call(keyed, "GET", "/experiments/default").status_code == 200
    assert call(keyed, "POST", "/inference", json={"data": "hi"}).status_code == 200


def test_keys_for_scoring_guard_scoring_and_feedback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fake_app(tmp_path, monkeypatch, api_keys=KEY, api_keys_for_scoring=True)
    feedback = {"inference_id": "5b0c1f7e-1111-4111-8111-111111111111", "feedback": 1.0}
    assert call(app, "POST", "/inference", json={"data": "hi"}).status_code == 401
    assert call(app, "PATCH", "/inference", json=feedback).status_code == 401
    assert call(app, "POST", "/inferences", json={"items": [{"data": "hi"}]}).status_code == 401
    scored = call(app, "POST", "/inference", json={"data": "hi"}, headers=auth(KEY))
    assert scored.status_code == 200
    again = call(app, "GET", f"/inference/{scored.json()['inference_id']}")
    assert again.status_code == 401
    assert call(app, "GET", "/experiments").status_code == 200  # reads of experiments stay open


def test_the_openapi_document_declares_the_keys_where_they_are_needed(keyed: Any) -> None:
    doc = call(keyed, "GET", "/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer <API key>`",
    }
    assert schemes["apiKey"]["in"] == "header" and schemes["apiKey"]["name"] == "X-API-Key"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            changes = (path == "/experiments/{name}" and method in ("put", "delete")) or (
                path == "/experiments/{name}/rollout/{action}"
            )
            assert ("security" in op) == changes, (method, path)
            assert ("401" in op["responses"]) == changes, (method, path)
            if changes:
                assert op["security"] == [{"bearer": []}, {"apiKey": []}]
                for code in ("401", "403"):
                    ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                    assert ref == "#/components/schemas/Problem"
                assert "WWW-Authenticate" in op["responses"]["401"]["headers"]


def test_without_keys_the_api_is_open_and_declares_no_security(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = fake_app(tmp_path, monkeypatch)
    assert call(app, "PUT", "/experiments/e", json=EXPERIMENT).status_code == 200
    assert call(app, "DELETE", "/experiments/e").status_code == 204
    doc = call(app, "GET", "/openapi.json").json()
    assert "securitySchemes" not in doc.get("components", {})


@pytest.fixture()
def records() -> Iterator[list[dict[str, Any]]]:
    """Every log record the gateway writes meanwhile, as `driftline.logs` formats it."""
    with logged() as found:
        yield found


def test_keys_are_never_logged(keyed: Any, records: list[dict[str, Any]]) -> None:
    call(
        keyed, "PUT", "/experiments/e", json=EXPERIMENT, headers={"X-API-Key": "wrong-key-abcdefgh"}
    )
    call(keyed, "PUT", "/experiments/e", json=EXPERIMENT, headers=auth(KEY))
    lines = "\n".join(json.dumps(record) for record in records)
    assert "experiment stored" in lines  # the gateway did log
    assert KEY not in lines and "wrong-key-abcdefgh" not in lines
