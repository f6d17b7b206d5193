"""bench/overload.py runs end to end, briefly, and reports every part the issue asks of it.

The 30-minute run (docs/reliability.md) cannot be a test; this one feeds the real pipeline under
moto for 12 s at twice one unit's rate, as its own process (its local cloud is its own moto), and
checks the report's shape and the outcomes that hold at any length: the heading names the
command, the table has rows, no image is lost, each has one result, the model is stopped. Scaling
and saturation need a few drain rounds, more than a short feed gives, so they are not asserted
here (the overload test, tests/integration/test_overload.py, asserts them). Times are never
asserted. The queue and the gateway are read every second: the first look starts the execution.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.integration


def test_a_short_run_loses_nothing_and_reports_every_part() -> None:
    command = [sys.executable, "bench/overload.py", "--minutes", "0.2", "--sample-seconds", "1",
               "--drain-minutes", "3"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert run.returncode in (0, 1), f"the bench crashed:\n{run.stdout}\n{run.stderr}"  # 1: a check failed
    out = run.stdout
    assert re.match(r"Measured \d{4}-\d\d-\d\d with `python bench/overload.py --minutes 0.2 ", out), out
    rows = [line for line in out.splitlines() if re.match(r"\| \d", line)]
    assert len(rows) >= 3, out
    sent = int(re.search(r"^sent (\d+) images", out, re.M).group(1))  # type: ignore[union-attr]
    assert sent > 0
    assert f"images lost: 0; results: {sent} for {sent} images (0 written twice); dead letters: 0" in out, out
    assert re.search(r"model STOPPED at the end", out), out
    for part in ("capacity: 2 units x DetectTps 1/s", "drain at the ceiling", "largest backlog",
                 "PipelineOverloadedAlarm", "the gateway's housekeeping said"):
        assert part in out, out
    assert "none_lost yes, one_each yes, stopped yes" in out, out
