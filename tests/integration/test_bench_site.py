"""bench/site.py at a small scale: many gateways on several models of one local stack.

The same run the benchmark makes (the real stack, two model routes added with `batchsight model
route`, simulated gateways with their own result queues), shortened to six gateways on three
models for twenty seconds, as its own process (its local cloud is its own moto: this process
has the tests' one). Every image must get exactly one result, at its own gateway, judged by its
own model, each model hosted under its own lock. Times are never asserted.
"""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.integration


def test_every_image_gets_one_result_at_its_own_gateway_from_its_own_model() -> None:
    command = [sys.executable, "bench/site.py", "--gateways", "6", "--minutes", "0.34", "--batch-seconds", "10",
               "--drain-seconds", "90"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=REPO)
    assert run.returncode == 0, f"a check failed or the bench crashed:\n{run.stdout}\n{run.stderr}"
    out = run.stdout
    assert re.match(r"Measured \d{4}-\d\d-\d\d with `python bench/site.py --gateways 6 ", out), out
    rows = {match.group(1): match.groups()[1:] for match in re.finditer(
        r"^\| (\w+) \(\w+-detector\.npz\) \| (\d+) \| (\d+) \| (\d+) \| \d+ \| (\d+) \|", out, re.M)}
    assert set(rows) == {"default", "pcb", "bottle"}, out
    for gateways, images, results, starts in rows.values():
        assert (gateways, images, results) == ("2", "8", "8") and int(starts) >= 1, out
    assert "every check holds" in out and "results at another gateway: 0" in out, out
