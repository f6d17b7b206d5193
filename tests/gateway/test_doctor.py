"""doctor.py's drop-folder events check: which file system holds the drop folder, and whether
the rescan is short enough for a network mount (the other checks run in test_operability)."""
from __future__ import annotations

from pathlib import Path

import pytest

from batchsight.config import config_from_dict
from batchsight.doctor import _drop_folder_events, clock_offset, mount_type

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
