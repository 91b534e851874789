"""Keeping a process from importing libraries it does not use.

Some libraries import an optional dependency only to look for it, and that look costs a
process its whole size: scikit-learn imports pandas in `sklearn.utils.fixes` and never uses it,
and DuckDB imports pandas to check whether a query parameter is a DataFrame: pandas and the
pyarrow it brings are 60 MB in every flow process. A hidden package fails to import, which all
of them take as "not installed"; a process that has imported it already keeps it.

Only importing fails: `importlib.util.find_spec` still finds a hidden package, because some
libraries list what is installed that way at import time (torch's compiler does, for pandas)
and take an error there for a broken installation.

>>> import importlib.util
>>> keep_out("antigravity")
>>> try:
...     import antigravity
... except ModuleNotFoundError as exc:
...     print(exc)
antigravity is hidden from this process
>>> importlib.util.find_spec("antigravity") is not None  # a look is not an import
True
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from typing import Any

_IMPORTING = "_find_and_load_unlocked"
"""The import system's function that looks for a module it is about to import (CPython 3.11 to
3.13); `importlib.util.find_spec` reaches the same finders from elsewhere."""


class _Hidden(importlib.abc.MetaPathFinder):
    """Makes an import of `packages` (or their modules) fail while it is on `sys.meta_path`."""

    def __init__(self, packages: Sequence[str]) -> None:
        self.packages = tuple(packages)

    def find_spec(
        self, name: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name.split(".")[0] in self.packages and _importing():
            raise ModuleNotFoundError(f"{name} is hidden from this process", name=name)
        return None  # not ours, or only a look: the next finder decides


def _importing() -> bool:
    """Whether the finder is asked by an import, not by `importlib.util.find_spec`."""
    frame = sys._getframe(3)  # here <- _Hidden.find_spec <- importlib's _find_spec <- the asker
    return frame.f_code.co_name == _IMPORTING


def keep_out(*packages: str) -> None:
    """Hide `packages` from this process for good: for a process that never needs them, so
    that no library's look for them loads them later. Call it before those libraries import.
    """
    if any(isinstance(f, _Hidden) and f.packages == packages for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Hidden(packages))
