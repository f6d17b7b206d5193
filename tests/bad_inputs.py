"""Table-driven bad inputs for the command line: each a real `batchsight` process, one line back.

A row names the arguments (after ``batchsight``), the files to lay out first, the exit code
(2 for a usage error: a wrong argument, option or configuration value; 1 for a failure the
user did not cause) and a pattern the one line on stderr must match. Every row also asserts
that no traceback reaches the user and that the answer is one line that says what to do.

    CASES = [BadInput("fit on a missing folder", ["fit", "--normal", "{tmp}/none", ...], 2,
                      r"no folder .*none"), ...]

    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
    def test_bad_input(case: BadInput, tmp_path: Path) -> None:
        check(case, tmp_path)

``{tmp}`` in arguments and file contents is the test's temporary folder.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TIMEOUT_SECONDS = 120


@dataclass(frozen=True)
class BadInput:
    name: str
    argv: list[str]
    exit_code: int
    message: str  # a regular expression the stderr line must contain
    files: Mapping[str, str | bytes] = field(default_factory=dict)  # relative path -> content
    environment: Mapping[str, str] = field(default_factory=dict)


def lay_out(case: BadInput, tmp: Path) -> None:
    for relative, content in case.files.items():
        path = tmp / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content.replace("{tmp}", str(tmp)))


def run(case: BadInput, tmp: Path) -> subprocess.CompletedProcess[str]:
    lay_out(case, tmp)
    argv = [argument.replace("{tmp}", str(tmp)) for argument in case.argv]
    return subprocess.run([sys.executable, "-m", "batchsight_tools.cli", *argv], cwd=tmp,
                          capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                          env={**os.environ, **case.environment})


def check(case: BadInput, tmp: Path) -> None:
    """The exit code, one line on stderr that matches, and no traceback anywhere."""
    result = run(case, tmp)
    everything = result.stdout + result.stderr
    assert "Traceback" not in everything, everything
    assert result.returncode == case.exit_code, f"exit {result.returncode}: {everything}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if case.exit_code == 2 and lines and lines[0].startswith("usage:"):
        lines = lines[-1:]  # argparse prints its usage line before the one that says what is wrong
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    assert re.search(case.message, lines[0]), f"{lines[0]!r} does not match {case.message!r}"
