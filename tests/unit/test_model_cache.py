"""The model cache: one load per version, least recently used versions unloaded at the bound."""

from __future__ import annotations

from driftline.settings import load
from models.serving import ModelCache


def test_loads_each_version_once_and_unloads_the_least_recently_used() -> None:
    loads: list[tuple[str, str]] = []

    def loader(name: str, version: str) -> str:
        loads.append((name, version))
        return f"estimator {name}/{version}"

    cache = ModelCache(load(home=".", model_cache_size=2), loader=loader)
    assert cache.get_version("m", "1").estimator == "estimator m/1"
    cache.get_version("m", "2")
    cache.get_version("m", "1")  # used again: now the most recent
    assert loads == [("m", "1"), ("m", "2")]
    cache.get_version("m", "3")  # over the bound: version 2, the least recently used, goes
    cache.get_version("m", "1")
    assert loads == [("m", "1"), ("m", "2"), ("m", "3")]
    cache.get_version("m", "2")  # was unloaded: loaded again
    assert loads[-1] == ("m", "2") and len(loads) == 4
