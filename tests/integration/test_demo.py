"""The README's first command ends in `batchsight demo`: keep it working (a smaller run)."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def _demo(tmp_path, *options: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "batchsight_tools.cli", "demo", "--count", "16", "--train", "24", "--size", "128",
         "--model-startup", "1", "--workdir", str(tmp_path / "demo"), *options],
        capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "demo passed" in result.stdout
    return result.stdout


@pytest.mark.parametrize("backend", ["local", "sagemaker"])
def test_demo_runs_end_to_end_and_passes(tmp_path, backend: str) -> None:
    """Each backend: one result per image, alerts match, and nothing left hosted at the end."""
    output = _demo(tmp_path, "--backend", backend)
    assert re.search(r"result documents in the final bucket\s+16 \(one per image sent to the cloud: yes\)", output)


def test_demo_in_edge_first_mode(tmp_path) -> None:
    """Local verdicts at once; the audit sample (and the uncertain band) also checked by the cloud."""
    output = _demo(tmp_path, "--inference", "edge-first")
    assert re.search(r"results on MQTT\s+16 \(16 judged at the edge\)", output)
    documents = int(re.search(r"result documents in the final bucket\s+(\d+)", output).group(1))
    assert 0 < documents < 16, "a sample, not every image, goes to the cloud"
