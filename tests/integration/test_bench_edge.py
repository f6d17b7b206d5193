"""bench/edge.py runs end to end in its quick mode and prints every figure with its baseline.

Timing is not checked here (a shared 2-core machine makes absolute figures meaningless in a
test): only that each section ran and reported, and that the summary and markdown came out.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, SHARED

pytestmark = pytest.mark.integration

FIGURES = ("ingest floor casting", "ingest casting", "ingest floor circuitboard", "ingest circuitboard",
           "ingest+decode casting", "ingest+decode circuitboard",
           "decoder RSS peak casting", "decoder RSS peak circuitboard", "upload batch (submit)", "upload S3 part",
           "drop-to-result p50", "drop-to-result p95", "edge RSS steady", "edge RSS peak",
           "detect casting aligned 1T", "detect casting aligned 2T", "detect casting patchcore 1T",
           "detect circuitboard aligned 1T", "detect circuitboard patchcore 2T")


@pytest.mark.skipif(not all((SHARED / "data" / kind).is_dir() for kind in ("casting", "circuitboard")),
                    reason="needs the sample images in ../shared/data")
def test_quick_run_prints_every_figure(tmp_path: Path) -> None:
    table = tmp_path / "figures.md"
    command = [sys.executable, str(REPO / "bench" / "edge.py"), "--quick", "--markdown", str(table)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode in (0, 1), f"the bench crashed:\n{run.stdout}\n{run.stderr}"  # 1: a goal missed
    lines = run.stdout.splitlines()
    for name in FIGURES:
        line = next((x for x in lines if x.startswith(f"[{name}] ")), None)
        assert line is not None, f"no line for {name}:\n{run.stdout}\n{run.stderr}"
        assert "baseline" in line and "ratio" in line, line
    assert any(x.startswith("summary: ") for x in lines), run.stdout
    assert all(f"| {name} |" in table.read_text() for name in FIGURES)
