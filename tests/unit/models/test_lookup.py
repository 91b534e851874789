"""`models.lookup` reads an MLflow sqlite store as MLflow's own client does: the same version
for every alias, the same models with the same aliases and latest versions, the reserved alias
`latest` and deleted versions included. (The REST path runs in
tests/integration/test_cluster.py, against the MLflow server of the cluster profile.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from models import lookup


def test_aliases_and_versions_read_from_sqlite_agree_with_mlflow(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert lookup.alias_version(uri, "m", "champion") is None  # no store yet
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    for _ in range(3):
        client.create_model_version("m", source=str(tmp_path), run_id=None)
    client.set_registered_model_alias("m", "champion", "2")
    client.set_registered_model_alias("m", "challenger", "3")
    client.delete_model_version("m", "3")  # its alias goes with it
    client.create_registered_model("other")

    def mlflow_alias(name: str, alias: str) -> str | None:
        try:
            return str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def mlflow_has(name: str, version: str) -> bool:
        try:
            client.get_model_version(name, version)
        except MlflowException:
            return False
        return True

    asked = [("m", "champion"), ("m", "challenger"), ("m", "latest"), ("m", "nope")]
    asked += [("other", "latest"), ("nothing", "champion")]
    assert [lookup.alias_version(uri, n, a) for n, a in asked] == [
        mlflow_alias(n, a) for n, a in asked
    ]
    assert lookup.alias_version(uri, "m", "champion") == "2"
    assert lookup.alias_version(uri, "m", "latest") == "2"  # 3 is deleted
    versions = [("m", "1"), ("m", "3"), ("m", "4"), ("m", "x"), ("nothing", "1")]
    assert [lookup.has_version(uri, n, v) for n, v in versions] == [
        mlflow_has(n, v) for n, v in versions
    ]
    assert lookup.has_version(uri, "m", "1")
    assert lookup.registered(uri) == {
        model.name: (
            set(model.aliases or {}),
            str(max(int(v.version) for v in model.latest_versions))
            if model.latest_versions
            else None,
        )
        for model in client.search_registered_models()
    }
    assert lookup.registered(uri) == {"m": ({"champion"}, "2"), "other": (set(), None)}


def test_names_no_registry_can_hold_match_nothing(tmp_path: Path) -> None:
    """What a client may send (schemathesis found these): a lone surrogate, a NUL, a digit
    that is not ASCII. The gateway answers 422 for them, as it did when MLflow read them."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    client.create_model_version("m", source=str(tmp_path), run_id=None)
    client.set_registered_model_alias("m", "champion", "1")
    for odd in ("\ud800", "m\x00", "\udbbc\ude9b"):
        assert lookup.alias_version(uri, odd, "champion") is None
        assert lookup.alias_version(uri, "m", odd) is None
        assert not lookup.has_version(uri, odd, "1")
    assert not lookup.has_version(uri, "m", "\u00b9")  # superscript one
    assert not lookup.has_version(uri, "m", "\ud800")


def test_a_store_of_another_kind_is_left_to_mlflow() -> None:
    with pytest.raises(lookup.NotReadable):
        lookup.alias_version("postgresql://localhost/mlflow", "m", "champion")
