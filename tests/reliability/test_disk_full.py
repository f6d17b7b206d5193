"""The gateway's disk fills up while images arrive: nothing corrupt, nothing lost, loud, and it recovers.

The work folder (journal, staging, spool) lives on a real tmpfs of a few MiB mounted by the
test, and a filler file takes its space while the camera keeps dropping images, as a runaway
log or a recording on the same disk would. Two cases:

- the guard works: ``disk.min_free_bytes`` is above what is left, so the component stops
  taking files before the disk is full; images wait in the drop folder;
- the guard cannot help (thresholds 0): the file system really answers ENOSPC to the copy
  into staging and SQLITE_FULL to the journal; the component must not corrupt the journal,
  crash, or drop an image, must say "disk full" on the status topic and in its log, and must
  carry on when space returns.

Both end with the same bar as every reliability test: each image exactly one result document
and one result message, one alert per anomalous image, and ``PRAGMA integrity_check`` ok.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.synth import generate
from tests.edge_process import Edge, result_keys, write_config
from tests.reliability.faults import DiskFiller, integrity, journal_states, mount_tmpfs, unmount
from tests.support import CloudFixture, report_reliability, wait_for

pytestmark = pytest.mark.integration
MIB = 1 << 20
BEFORE, DURING = 10, 12  # images dropped before the disk fills, and while it is full


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, always unmounted afterwards."""
    folder = tmp_path / "disk"
    mount_tmpfs(folder, "16m")
    try:
        yield folder
    finally:
        unmount(folder)


def _edge_config(tmp_path: Path, cloud: CloudFixture, port: int, *, drop: Path, work: Path,
                 min_free: int) -> Path:
    config = write_config(tmp_path, cloud, port)
    data = yaml.safe_load(config.read_text())
    data.update(drop_folder=str(drop), work_folder=str(work))
    data["disk"] = {"min_free_bytes": min_free, "quota_bytes": 1 << 40}
    data["ingest"]["max_bytes"] = 512 * 1024  # resume once half a MiB is free again
    config.write_text(yaml.safe_dump(data))
    return config


def _run_disk_full(tmp_path: Path, cloud: CloudFixture, hmi: Subscriber, broker_port: int, *,
                   drop: Path, work: Path, min_free: int, leave: int, alarm: str) -> dict[str, Any]:
    """Drop BEFORE images, fill the disk, drop DURING more, check the hold, free the disk, check all."""
    frames = generate(tmp_path / "camera", count=BEFORE + DURING, size=96, seed=61, anomaly_rate=0.25)
    drop.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "edge.log"
    edge = Edge(_edge_config(tmp_path, cloud, broker_port, drop=drop, work=work, min_free=min_free), log)
    journal = work / "journal.sqlite3"
    filler = None
    try:
        for frame in frames[:BEFORE]:
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
        wait_for(lambda: journal.exists() and len(journal_states(journal)) >= BEFORE, 30,
                 "the first images in the journal")
        filler = DiskFiller(work.parent, leave=leave)  # the small disk's root
        for frame in frames[BEFORE:]:
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
            time.sleep(0.05)
        wait_for(lambda: any(alarm in a for s in hmi.statuses for a in s.get("alarms", [])), 30,
                 f"a {alarm!r} alarm on the status topic")
        time.sleep(2.0)  # several ingest rounds at the component's stable_seconds of 0.5 s
        assert edge.process.poll() is None, "the component must survive a full disk"
        held = sorted(p.name for p in drop.iterdir())
        assert held, "images arriving on a full disk wait in the drop folder"
        assert integrity(journal) == "ok", "the journal is intact while the disk is full"
        alarm_text = next(a for s in hmi.statuses for a in s.get("alarms", []) if alarm in a)

        filler.release()
        freed = time.monotonic()
        recover_s = wait_for(lambda: len(hmi.results) >= len(frames), 120,
                             "every image's result once space returned")
        wait_for(lambda: hmi.statuses and not hmi.statuses[-1].get("alarms"), 30, "the alarm to clear")
        time.sleep(1.0)  # a duplicate would arrive now
    finally:
        if filler is not None:
            filler.release()
        assert edge.stop() == 0, "SIGTERM still stops the component cleanly"

    assert integrity(journal) == "ok", "PRAGMA integrity_check on the journal after the run"
    keys = result_keys(cloud)
    assert len(keys) == len(set(keys)) == len(frames), "exactly one result document per image"
    assert {m["file_name"] for _, m in hmi.results.values()} == {f.path.name for f in frames}, \
        "every dropped image, including those held in the drop folder, has its result"
    assert hmi.duplicates == 0
    anomalous = {i for i, (_, m) in hmi.results.items() if m["is_anomalous"]}
    assert set(hmi.alerts) == anomalous, "one alert per anomalous result, no more"
    assert list(drop.iterdir()) == [] and list((work / "staging").iterdir()) == []
    assert list((work / "quarantine").iterdir()) == [], "no good image was quarantined"
    logged = log.read_text()
    assert alarm in logged, "the alarm is in the component's log too"
    return {"frames": len(frames), "held": len(held), "keys": len(keys), "recover_s": recover_s,
            "alarm": alarm_text, "freed": freed}


def test_low_disk_guard_holds_images_in_the_drop_folder_and_resumes(
        local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber, small_disk: Path, tmp_path: Path) -> None:
    """Drop and work folder share the small disk; the guard stops ingesting below 2 MiB free."""
    figures = _run_disk_full(tmp_path, local_cloud, hmi, mqtt_broker.port, drop=small_disk / "drop",
                             work=small_disk / "work", min_free=2 * MIB, leave=MIB, alarm="low disk")
    assert figures["held"] == DURING, "the guard took none of the images that arrived while low"
    report_reliability("disk-low-guard", dropped=figures["frames"], accounted=figures["keys"],
                       duplicates=0, recover_s=figures["recover_s"])


def test_disk_truly_full_without_guard_corrupts_and_loses_nothing(
        local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber, small_disk: Path, tmp_path: Path) -> None:
    """Thresholds 0: the work folder's file system answers ENOSPC / SQLITE_FULL for real.

    The drop folder is on another file system (the camera's share can still be written), so
    every file crosses file systems: the copy into staging is what hits ENOSPC first.
    """
    figures = _run_disk_full(tmp_path, local_cloud, hmi, mqtt_broker.port, drop=tmp_path / "drop",
                             work=small_disk / "work", min_free=0, leave=0, alarm="disk full")
    assert "No space left on device" in figures["alarm"] or "database or disk is full" in figures["alarm"]
    report_reliability("disk-full-enospc", dropped=figures["frames"], accounted=figures["keys"],
                       duplicates=0, recover_s=figures["recover_s"])
