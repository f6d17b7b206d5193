"""doctor's device id check: on Greengrass the device id must be the core device's thing name
(the stack's EdgeDevicePolicy scopes every S3 prefix by ``credentials-iot:ThingName``); one FAIL
with the line to change, and the bucket checks, which that cause alone would fail, skipped.
Greengrass sets AWS_IOT_THING_NAME in a component's environment; here the environment is given."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from batchsight import wiring
from batchsight.config import config_from_dict
from batchsight.doctor import Verdict, run_checks, thing_name_check
from batchsight_tools.localcloud.stack import free_port
from tests.gateway.test_doctor import gateway_settings


def _config(tmp_path: Path, device: str = "line1-gw"):
    return config_from_dict({**gateway_settings(tmp_path, 1883), "device": device})


@pytest.mark.parametrize("environ,verdict,said", [
    ({}, Verdict.PASS, "off Greengrass any id will do"),
    ({"AWS_IOT_THING_NAME": "line1-gw"}, Verdict.PASS, "line1-gw, this core device's thing name"),
    ({"AWS_IOT_THING_NAME": "plant1-line1-gw"}, Verdict.FAIL,
     "device 'line1-gw' is not this core device's thing name 'plant1-line1-gw': set device: plant1-line1-gw"),
])
def test_the_device_id_must_be_the_thing_name_on_greengrass(tmp_path: Path, environ: dict[str, str],
                                                            verdict: Verdict, said: str) -> None:
    check = thing_name_check(_config(tmp_path), environ)
    assert check.verdict is verdict and said in check.detail
    assert "\n" not in check.detail


def test_a_thing_name_of_digits_would_match_other_devices_date_levels(tmp_path: Path) -> None:
    check = thing_name_check(_config(tmp_path, device="2026"), {"AWS_IOT_THING_NAME": "2026"})
    assert check.verdict is Verdict.FAIL and "a thing name with a letter in it" in check.detail


def test_a_wrong_device_id_is_one_fail_and_the_buckets_wait_for_it(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_IOT_THING_NAME", "line2-gw")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    config = config_from_dict({**gateway_settings(tmp_path, free_port(), f"http://127.0.0.1:{free_port()}"),
                               "device": "line1-gw"})
    found = {c.name: c for c in run_checks(config, wiring.aws_clients(config))}
    assert found["device id"].verdict is Verdict.FAIL and "set device: line2-gw" in found["device id"].detail
    for name in ("source bucket", "final bucket"):
        assert found[name].verdict is Verdict.SKIP
        assert found[name].detail == "not checked: the device id is not the thing name (see device id)"


def test_the_command_says_what_to_change_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text(yaml.safe_dump({**gateway_settings(tmp_path, free_port(), f"http://127.0.0.1:{free_port()}"),
                                      "device": "gateway1"}))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_IOT_THING_NAME": "line1-gw"}
    result = subprocess.run([sys.executable, "-m", "batchsight", "doctor", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("FAIL  device id")]
    assert "set device: line1-gw" in line
