"""SIGKILL at the exact points where a file is moved before the record that explains it (issue #23).

The edge program runs as its own process against moto and a real broker, and is killed with
SIGKILL inside one narrow window; after a restart every image must end in exactly one result, or
in exactly one quarantine entry: the file, its ``.reason.txt`` and its journal row (which the
status topic counts). The kill comes from ``faults.KillPoint``: a ``sitecustomize`` on the
subprocess' PYTHONPATH wraps one ``os`` call, so the component's own code runs unchanged up to it.

- A drop folder on another file system (here a tmpfs mounted by the test): the copy is renamed
  into staging and synced before the camera's file is unlinked (``durable.move_across``); a kill
  just before the unlink leaves both. Killed there three times, the frame must still end in one
  result and no quarantine entry ("duplicate of image …" was the symptom, one per kill).
- A quarantine, killed just before and just after the file's rename into ``quarantine/``: a file
  ingest rejects, and an image the decoder sets aside from the spool.
"""
from __future__ import annotations

import hashlib
import io
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.synth import generate
from tests.edge_process import Edge, result_keys, write_config
from tests.reliability.faults import KillPoint, journal_states, mount_tmpfs, unmount
from tests.support import CloudFixture, report_reliability, wait_for

pytestmark = pytest.mark.integration
KILLS = 3
NOT_AN_IMAGE = b"exposure 1/250, gain 2\n"


def _scrambled_jpeg() -> bytes:
    """Complete, so ingest takes it, but its scan names components the frame never declared:
    only the decoder finds out, and the image is set aside from the spool."""
    buffer = io.BytesIO()
    Image.new("RGB", (128, 96), (40, 90, 30)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    scan = data.index(b"\xff\xda")
    data[scan + 4:scan + 8] = b"\x09\x09\x09\x09"
    return bytes(data)


def _killed(edge: Edge, kill: KillPoint) -> None:
    assert edge.process.wait(timeout=60) == -signal.SIGKILL, "the edge program died at the kill point"
    assert kill.fired


def _stopped(hmi: Subscriber) -> dict[str, Any]:
    """The status the component published as it stopped, with its counts."""
    wait_for(lambda: hmi.statuses and hmi.statuses[-1].get("state") == "stopped", 10, "the status at the stop")
    return hmi.statuses[-1]


def _quarantine(work: Path) -> tuple[list[Path], list[Path], list[tuple[str, str]]]:
    """Files kept in quarantine, hidden leftovers there (unfinished intents, partial copies), and
    the journal's quarantine rows."""
    folder = work / "quarantine"
    kept = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.name.endswith(".reason.txt"))
    hidden = sorted(p for p in folder.iterdir() if p.name.startswith("."))
    with sqlite3.connect(f"file:{work / 'journal.sqlite3'}?mode=ro", uri=True, timeout=5) as db:
        rows = db.execute("SELECT path, reason FROM quarantine ORDER BY path").fetchall()
    return kept, hidden, rows


@pytest.fixture
def drop_on_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """The drop folder on a file system of its own, as a camera share or a second disk is."""
    drop = tmp_path / "drop"
    mount_tmpfs(drop, "16m")
    try:
        yield drop
    finally:
        unmount(drop)


def test_a_kill_before_the_drop_folder_file_is_unlinked_leaves_one_result_and_no_quarantine(
        local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber, tmp_path: Path, drop_on_tmpfs: Path) -> None:
    drop, work = drop_on_tmpfs, tmp_path / "work"
    [frame] = generate(tmp_path / "camera", count=1, size=96, seed=71, anomaly_rate=0.0)
    image_id = hashlib.sha256(frame.path.read_bytes()).hexdigest()
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    log = tmp_path / "edge.log"
    kill = KillPoint(tmp_path / "kill", call="unlink", under=drop, when="before")
    (drop / frame.path.name).write_bytes(frame.path.read_bytes())
    for _ in range(KILLS):  # the first kill in ingest's move_across; the later ones wherever the next unlink is
        kill.arm()
        _killed(Edge(config, log, env=kill.env), kill)
        assert (drop / frame.path.name).exists(), "killed before the camera's file left the drop folder"
        assert [p.name[33:] for p in (work / "staging").iterdir()] == [frame.path.name], \
            "its whole copy is in staging"
    edge = Edge(config, log, env=kill.env)  # disarmed
    try:
        restarted = time.monotonic()
        wait_for(lambda: image_id in hmi.results, 90, "the frame's result after the kills")
        recover_s = time.monotonic() - restarted
        time.sleep(1.5)  # a duplicate, or a status counting a quarantined copy, would come now
    finally:
        assert edge.stop() == 0
    assert result_keys(local_cloud) == [k for k in result_keys(local_cloud) if k.endswith(f"/{image_id}.json")]
    assert len(result_keys(local_cloud)) == 1, "one result document"
    assert list(hmi.results) == [image_id] and hmi.duplicates == 0
    kept, hidden, rows = _quarantine(work)
    assert (kept, hidden, rows) == ([], [], []), "no quarantined copy of the frame"
    assert _stopped(hmi)["quarantined"] == 0
    assert list(drop.iterdir()) == [] and list((work / "staging").iterdir()) == []
    text = log.read_text()
    assert text.count("interrupted move finished") == 1, "the restart's recovery removed the camera's file"
    assert "Traceback" not in text
    report_reliability("kill9-before-cross-fs-unlink", dropped=1, accounted=len(result_keys(local_cloud)),
                       duplicates=hmi.duplicates + len(kept), recover_s=recover_s)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("case", ["rejected at ingest", "set aside by the decoder"])
def test_a_kill_at_the_move_into_quarantine_leaves_one_entry_with_its_reason_and_row(
        local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber, tmp_path: Path, when: str, case: str) -> None:
    drop, work = tmp_path / "drop", tmp_path / "work"
    drop.mkdir()
    data, reason = ((NOT_AN_IMAGE, "not a JPEG or PNG") if case == "rejected at ingest"
                    else (_scrambled_jpeg(), "image does not decode"))
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    log = tmp_path / "edge.log"
    kill = KillPoint(tmp_path / "kill", call="replace", under=work / "quarantine", when=when)
    kill.arm()
    edge = Edge(config, log, env=kill.env)
    (drop / "part-0042.jpg").write_bytes(data)
    _killed(edge, kill)
    edge = Edge(config, log, env=kill.env)  # disarmed
    try:
        wait_for(lambda: any(s.get("quarantined") for s in hmi.statuses), 60, "a status counting the quarantined file")
        time.sleep(1.5)  # a second entry (the spool file "gone", the staged file again) would come now
    finally:
        assert edge.stop() == 0
    kept, hidden, rows = _quarantine(work)
    assert [p.read_bytes() for p in kept] == [data], "the file, once"
    [path] = kept
    text = path.with_name(path.name + ".reason.txt").read_text().strip()
    assert text.startswith(reason), text
    assert rows == [(str(path), text)], "its journal row, with the same reason"
    assert hidden == [], "nothing unfinished left in quarantine"
    assert _stopped(hmi)["quarantined"] == 1, "the status counts it"
    assert journal_states(work / "journal.sqlite3") == {}, "no image waits on it"
    assert list(hmi.results) == [] and result_keys(local_cloud) == []
    assert list(drop.iterdir()) == [] and list((work / "staging").iterdir()) == []
    assert list((work / "spool").iterdir()) == []
    text = log.read_text()
    assert text.count("interrupted quarantine finished") == 1, "the restart finished the entry the kill cut short"
    assert "Traceback" not in text
    report_reliability(f"kill9-{when}-quarantine-move-{'ingest' if case == 'rejected at ingest' else 'set-aside'}",
                       dropped=1, accounted=len(kept), duplicates=len(rows) - 1, recover_s=None)
