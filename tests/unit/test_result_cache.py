from __future__ import annotations

from gateway.bridge import ResultCache
from tests.factories import make_result


def test_cache_is_bounded_and_forgets_the_oldest() -> None:
    cache = ResultCache(capacity=2)
    first, second, third = make_result(), make_result(), make_result()
    for r in (first, second, third):
        cache.put(r)
    assert cache.get(first.inference_id) is None
    assert cache.get(second.inference_id) == second
    assert cache.get(third.inference_id) == third
