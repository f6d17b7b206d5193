"""`batchsight doctor` and `batchsight status` as real processes, against the local cloud (moto
server over HTTP), a real broker, an environment with no credentials and an endpoint on a
closed port; status also while the real component runs and after it stopped."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight_tools.localcloud.stack import CREDENTIALS, free_port
from tests.edge_process import write_config
from tests.support import CloudFixture, wait_for

pytestmark = pytest.mark.integration


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if env is None:
        env = {**os.environ, **CREDENTIALS}
        env.pop("AWS_ENDPOINT_URL", None)
    return subprocess.run([sys.executable, "-m", "batchsight", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def _bare_env(home: Path, **extra: str) -> dict[str, str]:
    """No AWS credentials anywhere in the chain: no variables, no ~/.aws, no instance to ask."""
    return {"PATH": os.environ["PATH"], "HOME": str(home), "AWS_EC2_METADATA_DISABLED": "true", **extra}


def _verdicts(stdout: str) -> dict[str, str]:
    """check name -> PASS/WARN/FAIL/SKIP, from doctor's lines."""
    found = {}
    for line in stdout.splitlines():
        if line[:4] in ("PASS", "WARN", "FAIL", "SKIP"):
            found[" ".join(line[6:].split("  ")[0].split())] = line[:4]
    return found


def _edit(config: Path, **changes: Any) -> None:
    data = yaml.safe_load(config.read_text())
    for dotted, value in changes.items():
        group, _, name = dotted.rpartition("__")
        (data.setdefault(group, {}) if group else data)[name] = value
    config.write_text(yaml.safe_dump(data))


def test_doctor_passes_on_a_good_setup(local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    _edit(config, aws__result_queue_prefix=local_cloud.outputs.result_queue_prefix)
    (tmp_path / "drop").mkdir()
    (tmp_path / "work").mkdir()
    result = _cli("doctor", "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(_verdicts(result.stdout).values()) == {"PASS"} and result.stdout.count("PASS") == 14
    [clock] = [line for line in result.stdout.splitlines() if " clock " in line]
    assert " s behind AWS" in clock or " s ahead of AWS" in clock
    assert result.stdout.rstrip().endswith("all 14 checks passed")
    assert result.stderr == ""


def test_doctor_names_what_to_fix(local_cloud: CloudFixture, tmp_path: Path) -> None:
    config = write_config(tmp_path, local_cloud, free_port())  # nothing listens there
    _edit(config, aws__final_bucket="no-such-bucket")
    result = _cli("doctor", "--config", str(config))
    assert result.returncode == 1
    verdicts = _verdicts(result.stdout)
    assert [name for name, v in verdicts.items() if v == "FAIL"] == ["final bucket", "mqtt broker"]
    assert verdicts["drop folder"] == verdicts["work folder"] == "WARN"  # run creates them
    assert "no-such-bucket does not exist" in result.stdout and "FinalBucketName" in result.stdout
    assert "connection refused, nothing listens there" in result.stdout
    assert result.stderr == "", "the MQTT client's log line must not reach doctor's output"


def test_doctor_without_credentials_gives_one_fail_with_the_chain(local_cloud: CloudFixture, mqtt_broker: Any,
                                                                  tmp_path: Path) -> None:
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    result = _cli("doctor", "--config", str(config), env=_bare_env(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    verdicts = _verdicts(result.stdout)
    assert [name for name, v in verdicts.items() if v == "FAIL"] == ["credentials"]
    assert verdicts["aws endpoints"] == verdicts["clock"] == verdicts["mqtt broker"] == "PASS"
    for name in ("source bucket", "final bucket", "queue", "state machine"):
        assert verdicts[name] == "SKIP"
    assert "not checked: no usable credentials (see credentials)" in result.stdout
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment" in result.stdout
    assert "TokenExchangeService" not in result.stdout
    assert result.stdout.rstrip().endswith("1 to fix: credentials; 4 skipped until it is fixed")
    assert result.stderr == ""


def test_doctor_on_greengrass_without_credentials_names_the_token_exchange_service(
        local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path) -> None:
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    result = _cli("doctor", "--config", str(config), env=_bare_env(tmp_path, SVCUID="component-token"))
    [credentials] = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert "credentials" in credentials and "aws.greengrass.TokenExchangeService" in credentials
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in credentials and "~/.aws" not in credentials


def test_doctor_with_an_unreachable_endpoint_says_which(local_cloud: CloudFixture, mqtt_broker: Any,
                                                        tmp_path: Path) -> None:
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    closed = f"http://127.0.0.1:{free_port()}"
    _edit(config, aws__endpoint_url=closed)
    result = _cli("doctor", "--config", str(config))
    assert result.returncode == 1
    verdicts = _verdicts(result.stdout)
    assert [name for name, v in verdicts.items() if v == "FAIL"] == ["aws endpoints"]
    [line] = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert f"cannot reach {closed} (s3, sqs, stepfunctions): connection refused" in line
    assert f"check aws.endpoint_url ({closed})" in line and "bucket" not in line
    assert [name for name, v in verdicts.items() if v == "SKIP"] == ["clock", "source bucket", "final bucket",
                                                                    "queue", "state machine"]
    assert result.stderr == ""


def test_doctor_fails_a_drop_folder_that_is_a_file(local_cloud: CloudFixture, mqtt_broker: Any,
                                                   tmp_path: Path) -> None:
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    (tmp_path / "drop").write_text("a file")
    result = _cli("doctor", "--config", str(config))
    verdicts = _verdicts(result.stdout)
    assert verdicts["drop folder"] == "FAIL" and verdicts["drop folder events"] == "SKIP"
    assert "is a file, not a folder: point drop_folder at a folder" in result.stdout


def test_doctor_checks_the_local_detector_in_the_edge_modes(local_cloud: CloudFixture, mqtt_broker: Any,
                                                            tmp_path: Path, fitted_model: Path) -> None:
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
                 if " local detector " in line]
        assert len(lines) == 1 and lines[0].startswith(verdict) and detail in lines[0], (inference, lines)


def test_status_reports_the_backlog(tmp_path: Path, local_cloud: CloudFixture) -> None:
    config = write_config(tmp_path, local_cloud, 1883)
    missing = _cli("status", "--config", str(config))
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.startswith("batchsight status: no journal at ") and missing.stderr.count("\n") == 1
    from batchsight.config import load_config
    from batchsight.journal import Journal

    journal = Journal(load_config(config).journal_path)
    journal.add({"image_id": "a" * 64, "file_name": "x.jpg", "path": "/x", "ext": "jpg", "size": 10,
                 "width": 64, "height": 64, "captured_at": "2026-11-23T10:00:00.000Z"})
    journal.close()
    status = json.loads(_cli("status", "--config", str(config), "--json").stdout)
    assert status["counts"]["validated"] == 1 and status["waiting_for_batch"] == 1
    assert status["held_bytes"] == 10 and status["oldest_waiting_since"].endswith("Z")
    assert status["judgements"] == {"judged_at_edge": 0, "audited": 0, "corrected": 0}
    assert status["component"] is None
    table = _cli("status", "--config", str(config)).stdout
    assert "Waiting for batch" in table and "1 image, the oldest since" in table and "{" not in table


def test_status_shows_the_alarm_the_running_component_last_knew(tmp_path: Path) -> None:
    """The real component without credentials: its cloud step is refused, it says so on the
    status it writes; `status` shows that while it runs, and "stopped" once it stopped."""
    from batchsight_tools.synth import generate

    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({
        "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
        "aws": {"source_bucket": "src", "final_bucket": "final", "queue_url": "http://127.0.0.1:9/1/q",
                "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:m",
                "endpoint_url": f"http://127.0.0.1:{free_port()}"},
        "batch": {"interval_seconds": 1.0, "max_age_seconds": 1.0}, "ingest": {"stable_seconds": 0.2},
        "mqtt": {"port": free_port()}}))
    (tmp_path / "drop").mkdir()
    [frame] = generate(tmp_path / "camera", count=1, size=128, seed=5)
    (tmp_path / "drop" / frame.path.name).write_bytes(frame.path.read_bytes())
    env = _bare_env(tmp_path)
    with (tmp_path / "edge.log").open("ab") as log:  # not tests.edge_process.Edge: it adds credentials
        edge = subprocess.Popen([sys.executable, "-m", "batchsight", "run", "--config", str(config)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        def alarmed() -> bool:
            status = json.loads(_cli("status", "--config", str(config), "--json", env=env).stdout or "null")
            return bool(status and status["component"] and status["component"]["alarms"])

        wait_for(alarmed, 30, "the no-credentials alarm in the component's status")
        table = _cli("status", "--config", str(config), env=env).stdout
        assert "running, its status written " in table
        assert "unreachable" in table and "! no AWS credentials: " in table and "~/.aws/credentials" in table
    finally:
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(timeout=20) == 0
    stopped = json.loads(_cli("status", "--config", str(config), "--json", env=env).stdout)
    assert stopped["component"]["state"] == "stopped" and stopped["component"]["stale"] is False
