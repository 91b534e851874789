"""Keeping a process from importing libraries it does not use.

Some libraries import an optional dependency only to look for it, and that look costs a
process its whole size: skops imports every scikit-learn module to list its trusted types, and
one of them imports torch (180 MB); DuckDB imports pandas (50+ MB) to check whether a
registered object is a DataFrame. A hidden package fails to import, which both take as "not
installed"; a process that has imported it already keeps it.

>>> import sys
>>> with hidden("no_such_package_either"):
...     try:
...         import json.tool
...         import no_such_package_either
...     except ModuleNotFoundError as exc:
...         print(exc)
no_such_package_either is hidden from this process
>>> any(isinstance(finder, _Hidden) for finder in sys.meta_path)
False
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


class _Hidden(importlib.abc.MetaPathFinder):
    """Makes an import of `packages` (or their modules) fail while it is on `sys.meta_path`."""

    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = tuple(packages)

    def find_spec(
        self, name: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] in self.packages:
            raise ModuleNotFoundError(f"{name} is hidden from this process", name=name)
        return None  # not ours: the next finder decides


@contextmanager
def hidden(*packages: str) -> Iterator[None]:
    """Hide `packages` while the block runs (already imported ones stay)."""
    finder = _Hidden(packages)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
