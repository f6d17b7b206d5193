"""ruff and mypy hold every package to the project's rules, inside the test command CI runs.

Their settings live in pyproject.toml ([tool.ruff], [tool.mypy]). The five functions are all
``app.py`` (Lambda's layout), so mypy checks them from cloud/functions as ``<name>.app``.
"""
from __future__ import annotations

import subprocess
import sys

from tests.support import REPO

PACKAGES = ("batchsight", "batchsight_detector", "batchsight_pipeline", "batchsight_tools")


def _run(*command: str, cwd: str = str(REPO)) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *command], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing_in_the_packages() -> None:
    result = _run("mypy", *(arg for package in PACKAGES for arg in ("-p", package)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing_in_the_functions() -> None:
    functions = sorted(p.parent.name for p in (REPO / "cloud" / "functions").glob("*/app.py"))
    assert functions, "no functions found"
    result = _run("mypy", "--config-file", str(REPO / "pyproject.toml"),
                  *(arg for name in functions for arg in ("-m", f"{name}.app")), cwd=str(REPO / "cloud" / "functions"))
    assert result.returncode == 0, result.stdout + result.stderr
