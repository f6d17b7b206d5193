"""The README's first command ends in `batchsight demo`: keep it working (a smaller run)."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["local", "sagemaker"])
def test_demo_runs_end_to_end_and_passes(tmp_path, backend: str) -> None:
    """Each backend: one result per image, alerts match, and nothing left hosted at the end."""
    result = subprocess.run(
        [sys.executable, "-m", "batchsight", "demo", "--count", "16", "--train", "24", "--size", "128",
         "--model-startup", "1", "--backend", backend, "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo passed" in result.stdout
    assert "result documents in the final bucket  16 (one per image: yes)" in result.stdout
