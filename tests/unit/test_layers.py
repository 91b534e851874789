"""Imports go one way: application > adapters > core (import-linter contracts in pyproject).

The second test proves the check can fail: it breaks each contract in a copy of the tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
PACKAGES = ("driftline", "broker", "servers", "lakehouse", "models", "flows", "gateway", "app")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` on the packages under `root` (found first on the import path)."""
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--config", "pyproject.toml"],
        cwd=root,
        env=os.environ | {"PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tree_keeps_every_import_contract() -> None:
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Contracts: 2 kept, 0 broken." in run.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("driftline/stats/ks.py", "import flows.wiring", "application > adapters > core"),
        ("lakehouse/writer.py", "import app.cli", "application > adapters > core"),
        ("driftline/topics.py", "import duckdb", "the core uses no I/O library"),
    ],
)
def test_a_core_module_importing_an_adapter_breaks_a_contract(
    tmp_path: Path, module: str, bad_import: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}  # the violation under test\n")
    run = lint_imports(tmp_path)
    assert run.returncode != 0
    assert f"{contract} BROKEN" in run.stdout, run.stdout
