"""`batchsight doctor` and `batchsight status` against the local cloud and a real broker."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight_tools.localcloud.stack import CREDENTIALS
from tests.edge_process import write_config
from tests.support import CloudFixture

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **CREDENTIALS}
    env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run([sys.executable, "-m", "batchsight", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_doctor_passes_on_a_good_setup(local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    (tmp_path / "drop").mkdir()
    (tmp_path / "work").mkdir()
    result = _cli("doctor", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASS") == 11
    [clock] = [line for line in result.stdout.splitlines() if " clock " in line]
    assert " s behind AWS" in clock or " s ahead of AWS" in clock


def test_doctor_names_what_to_fix(local_cloud: CloudFixture, tmp_path: Path) -> None:
    config = write_config(tmp_path, local_cloud, 1)  # nothing listens on port 1
    data = yaml.safe_load(config.read_text())
    data["aws"]["final_bucket"] = "no-such-bucket"
    config.write_text(yaml.safe_dump(data))
    result = _cli("doctor", "--config", str(config))
    assert result.returncode == 1
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert [line.split()[1:3] for line in failed] == [["drop", "folder"], ["work", "folder"], ["final", "bucket"],
                                                      ["mqtt", "broker"]]
    assert "FinalBucketName" in result.stdout


def test_doctor_checks_the_local_detector_in_the_edge_modes(local_cloud: CloudFixture, mqtt_broker: Any,
                                                            tmp_path: Path, fitted_model: Path) -> None:
    from batchsight_tools.localcloud.stack import free_port

    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    (tmp_path / "drop").mkdir()
    (tmp_path / "work").mkdir()
    data = yaml.safe_load(config.read_text())
    cases = [({"mode": "edge", "model": str(fitted_model)}, "PASS", "served at"),
             ({"mode": "edge", "model": str(tmp_path / "missing.npz")}, "FAIL", "does not exist"),
             ({"mode": "edge-first", "endpoint": f"http://127.0.0.1:{free_port()}"}, "FAIL", "batchsight serve")]
    for inference, verdict, detail in cases:
        config.write_text(yaml.safe_dump({**data, "inference": inference}))
        lines = [line for line in _cli("doctor", "--config", str(config)).stdout.splitlines()
                 if "local detector" in line]
        assert len(lines) == 1 and lines[0].startswith(verdict) and detail in lines[0], (inference, lines)


def test_status_reports_the_backlog(tmp_path: Path, local_cloud: CloudFixture) -> None:
    config = write_config(tmp_path, local_cloud, 1883)
    assert _cli("status", "--config", str(config)).returncode == 1  # no journal yet: says so
    from batchsight.config import load_config
    from batchsight.journal import Journal

    journal = Journal(load_config(config).journal_path)
    journal.add({"image_id": "a" * 64, "file_name": "x.jpg", "path": "/x", "ext": "jpg", "size": 10,
                 "width": 64, "height": 64, "captured_at": "2026-11-23T10:00:00.000Z"})
    journal.close()
    result = _cli("status", "--config", str(config))
    status = json.loads(result.stdout)
    assert status["counts"]["validated"] == 1 and status["waiting_for_batch"] == 1
    assert status["held_bytes"] == 10
    assert status["judgements"] == {"judged_at_edge": 0, "audited": 0, "corrected": 0}
