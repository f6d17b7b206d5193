"""doctor.py: the folders, the drop folder's file system, the clock offset, the broker, and one
FAIL per root cause for the AWS checks, with no credentials and with an endpoint on a closed
port (real sockets, no AWS; against a moto server in tests/integration/test_operability.py)."""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsight import wiring
from batchsight.config import Config, config_from_dict
from batchsight.doctor import (
    Check,
    Verdict,
    _broker,
    _drop_folder_events,
    _folder,
    clock_offset,
    mount_type,
    report,
    run_checks,
)
from batchsight_tools.localcloud.stack import free_port

# /proc/self/mountinfo lines as Linux writes them (a camera PC's share mounted over CIFS, a
# mount point with a space in it, optional fields before the '-').
MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 27 0:40 / /mnt/cameras rw,relatime shared:20 - cifs //camera-pc/images rw,vers=3.1.1
41 27 0:41 / /mnt/line\\0407 rw,relatime - nfs4 nas:/line7 rw
42 40 0:42 / /mnt/cameras/local rw,relatime - tmpfs tmpfs rw
"""
AWS = {"source_bucket": "s", "final_bucket": "f", "queue_url": "https://sqs.us-east-1.amazonaws.com/1/q",
       "state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:m"}


@pytest.mark.parametrize("path,kind", [
    ("/", "ext4"), ("/var/lib/batchsight/drop", "ext4"), ("/mnt/cameras", "cifs"),
    ("/mnt/cameras/drop", "cifs"), ("/mnt/cameras/local/drop", "tmpfs"), ("/mnt/line 7/drop", "nfs4"),
    ("/mnt/cameras-old/drop", "ext4"),  # a name that merely starts like a mount point
])
def test_the_longest_mount_point_holding_the_path_names_its_file_system(path: str, kind: str) -> None:
    assert mount_type(Path(path), MOUNTINFO) == kind


@pytest.mark.parametrize("rescan,ok", [(30.0, False), (5.0, True), (1.0, True)])
def test_a_network_drop_folder_needs_a_short_rescan(tmp_path: Path, rescan: float, ok: bool) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    config = config_from_dict({"site": "p", "line": "l", "device": "d", "aws": AWS,
                               "drop_folder": "/mnt/cameras/drop", "work_folder": str(tmp_path / "work"),
                               "ingest": {"rescan_seconds": rescan}})
    check = _drop_folder_events(config, mountinfo)
    assert check.ok is ok
    assert "cifs" in check.detail
    if not ok:
        assert "ingest.rescan_seconds to 1 to 5" in check.detail


def test_the_real_drop_folder_is_on_a_local_file_system_here(tmp_path: Path) -> None:
    config = config_from_dict({"site": "p", "line": "l", "device": "d", "aws": AWS,
                               "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work")})
    check = _drop_folder_events(config)
    assert check.ok
    assert check.detail.split(":")[0] not in ("unknown", "cifs", "nfs", "nfs4")
    assert "a scan every 30 s" in check.detail


def test_the_clock_offset_is_aws_time_minus_ours() -> None:
    date = "Tue, 24 Nov 2026 06:30:00 GMT"  # an HTTP Date header, as AWS sends it
    aws = 1795501800.0
    assert clock_offset(date, aws) == 0
    assert clock_offset(date, aws - 7200) == 7200  # the gateway two hours behind
    assert clock_offset(date, aws + 0.4) == pytest.approx(-0.4)


# --- folders ----------------------------------------------------------------------------------

def test_a_missing_folder_is_a_warning_because_the_component_creates_it(tmp_path: Path) -> None:
    check = _folder(tmp_path / "a" / "drop", "drop folder", "drop_folder")
    assert check.verdict is Verdict.WARN and check.ok
    assert "does not exist yet: the component creates it when it starts" in check.detail


def test_a_drop_folder_that_is_a_file_fails(tmp_path: Path) -> None:
    (tmp_path / "drop").write_text("not a folder")
    check = _folder(tmp_path / "drop", "drop folder", "drop_folder")
    assert check.verdict is Verdict.FAIL and "is a file, not a folder: point drop_folder at a folder" in check.detail
    below = _folder(tmp_path / "drop" / "cam1", "drop folder", "drop_folder")
    assert below.verdict is Verdict.FAIL and "is a file, not a folder: fix drop_folder" in below.detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_folder_that_cannot_be_created_fails(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    check = _folder(locked / "drop", "drop folder", "drop_folder")
    assert check.verdict is Verdict.FAIL and "mkdir -p" in check.detail


def test_the_report_ends_with_what_to_fix_first() -> None:
    checks = [Check("credentials", Verdict.FAIL, "none"), Check("queue", Verdict.SKIP, "not checked: x"),
              Check("drop folder", Verdict.WARN, "created at start")]
    assert report(checks).splitlines()[-1] == "1 to fix: credentials; 1 skipped until it is fixed"
    assert report(checks[2:]).splitlines()[-1] == "all 1 checks passed"
    assert report(checks).splitlines()[0] == "FAIL  credentials  none"


# --- AWS: one root cause, one FAIL -------------------------------------------------------------

@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """An environment with no AWS credentials anywhere in the chain (nor an instance to ask)."""
    for name in list(os.environ):
        if name.startswith("AWS_") or name in ("SVCUID",):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    yield


def gateway_settings(tmp_path: Path, broker_port: int, endpoint: str = "") -> dict[str, Any]:
    return {"site": "p", "line": "l", "device": "d", "aws": {**AWS, "endpoint_url": endpoint},
            "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
            "mqtt": {"port": broker_port}}


def gateway(tmp_path: Path, endpoint: str, broker_port: int) -> Config:
    return config_from_dict(gateway_settings(tmp_path, broker_port, endpoint))


def verdicts(checks: list[Check]) -> dict[str, tuple[Verdict, str]]:
    return {c.name: (c.verdict, c.detail) for c in checks}


def test_a_closed_endpoint_is_one_fail_that_names_it(tmp_path: Path, no_credentials: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = gateway(tmp_path, endpoint, free_port())
    found = verdicts(run_checks(config, wiring.aws_clients(config)))
    verdict, detail = found["aws endpoints"]
    assert verdict is Verdict.FAIL and detail.startswith(f"cannot reach {endpoint} (s3, sqs, stepfunctions): "
                                                          "connection refused")
    assert f"check aws.endpoint_url ({endpoint})" in detail and "bucket" not in detail
    for name in ("clock", "source bucket", "final bucket", "queue", "state machine"):
        assert found[name] == (Verdict.SKIP, f"not checked: {endpoint} cannot be reached (see aws endpoints)")
    assert found["credentials"][0] is Verdict.PASS and "env" in found["credentials"][1]
    assert [name for name, (v, _) in found.items() if v is Verdict.FAIL] == ["aws endpoints", "mqtt broker"]


@pytest.mark.parametrize("greengrass,fix,not_said", [
    (False, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, a profile in ~/.aws/credentials",
     "TokenExchangeService"),
    (True, "aws.greengrass.TokenExchangeService, and check that the nucleus's iotRoleAlias", "~/.aws"),
])
def test_no_credentials_is_one_fail_with_the_fix_for_where_the_gateway_runs(
        tmp_path: Path, no_credentials: None, greengrass: bool, fix: str, not_said: str) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    config = gateway(tmp_path, endpoint, free_port())
    checks = run_checks(config, wiring.aws_clients(config), greengrass=greengrass)
    verdict, detail = verdicts(checks)["credentials"]
    assert verdict is Verdict.FAIL and detail.startswith("no AWS credentials found: ")
    assert fix in detail and not_said not in detail


def test_on_greengrass_the_broker_is_not_the_components_to_check(tmp_path: Path) -> None:
    check = _broker(gateway(tmp_path, "", free_port()), on_greengrass_ipc=True)
    assert check.verdict is Verdict.SKIP and "local pub/sub" in check.detail


def test_a_broker_port_where_nothing_listens(tmp_path: Path) -> None:
    port = free_port()
    check = _broker(gateway(tmp_path, "", port), on_greengrass_ipc=False)
    assert check.verdict is Verdict.FAIL
    assert check.detail == (f"127.0.0.1:{port} (MQTT 5): connection refused, nothing listens there: start the "
                            "broker, or fix mqtt.host and mqtt.port")


def test_a_port_that_takes_connections_but_is_no_broker(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        check = _broker(gateway(tmp_path, "", server.getsockname()[1]), on_greengrass_ipc=False)
    assert check.verdict is Verdict.FAIL
    assert "takes connections but no MQTT session" in check.detail and "mqtt.protocol" in check.detail


def test_a_password_without_tls_is_a_warning(tmp_path: Path, mqtt_broker: Any) -> None:
    from batchsight_tools.localcloud.broker import protocol_for_port

    config = config_from_dict({**gateway_settings(tmp_path, mqtt_broker.port),
                               "mqtt": {"port": mqtt_broker.port, "protocol": protocol_for_port(mqtt_broker.port),
                                        "username": "line7", "password": "s3cret"}})
    check = _broker(config, on_greengrass_ipc=False)
    assert check.verdict is Verdict.WARN, check
    assert "connected, but the password goes over the network in clear text: set mqtt.tls" in check.detail
