"""Ingest's syncs, in order: the file and its folder entry are synced before the journal names it,
the spool's entry before ingestion returns (test_power_cut.py shows what that buys after a real
power cut). The order is that of the real sync calls, recorded by wrappers around ``os.fsync``
and ingest's group barrier ``durable.sync_files`` that still perform each one.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from batchsight import durable
from batchsight.config import config_from_dict
from batchsight.ingest import Ingestor
from batchsight.journal import Journal
from batchsight_tools.synth import generate


# --- fsync order, recorded while the real calls run --------------------------------------------
class SyncLog:
    """Wraps os.fsync, durable.sync_files, os.unlink and Journal.add_many: each records an event
    per path, then does the real thing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str]] = []
        real_fsync, real_unlink, real_add = os.fsync, os.unlink, Journal.add_many
        real_sync = durable.sync_files

        def fsync(fd: int) -> None:
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def sync_files(files: list[Path], folders: list[Path]) -> None:
            files, folders = list(files), list(folders)
            real_sync(files, folders)
            self.events.extend(("fsync", str(path)) for path in [*files, *folders])

        def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
            self.events.append(("unlink", os.fspath(path)))
            real_unlink(path, *args, **kwargs)

        def add_many(journal: Journal, records: list[dict[str, Any]], **kwargs: Any) -> list[bool]:
            self.events.extend(("journal", record["path"]) for record in records)
            return real_add(journal, records, **kwargs)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(durable, "sync_files", sync_files)
        monkeypatch.setattr(os, "unlink", unlink)
        monkeypatch.setattr(Journal, "add_many", add_many)

    def index(self, kind: str, path: Path | str, *, start: int = 0) -> int:
        for n, event in enumerate(self.events[start:], start):
            if event == (kind, str(path)):
                return n
        raise AssertionError(f"no {kind} of {path} in {self.events}")

    def staged_fsync(self, staging: Path) -> int:
        return next(n for n, (kind, path) in enumerate(self.events)
                    if kind == "fsync" and Path(path).parent == staging and not Path(path).name.startswith("."))


def _ingest_config(drop: Path, work: Path) -> Any:
    return config_from_dict({"drop_folder": str(drop), "work_folder": str(work), "aws": {
        "source_bucket": "source", "final_bucket": "final", "queue_url": "http://127.0.0.1:1/queue",
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:batchsight"}})


def _spooled(journal: Journal, image_id: str | None) -> Path:
    image = journal.get(image_id or "")
    assert image is not None, "journaled"
    return Path(image.path)


def _check_order(log: SyncLog, drop: Path, work: Path, spooled: Path) -> None:
    staging, spool = work / "staging", work / "spool"
    journaled = log.index("journal", spooled)
    assert log.staged_fsync(staging) < journaled, "the staged file's bytes are synced before the journal"
    assert log.index("fsync", staging) < journaled, "staging's entry is synced before the journal"
    assert log.index("fsync", drop) < journaled, "the drop folder's entry is synced before the journal"
    assert journaled < log.index("fsync", spool, start=journaled), "the spool entry is synced after the move"


def test_ingest_fsyncs_file_and_folders_before_the_journal_names_them(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    drop, work = tmp_path / "drop", tmp_path / "work"
    drop.mkdir()
    config = _ingest_config(drop, work)
    journal = Journal(config.journal_path)
    with sqlite3.connect(config.journal_path) as reader:  # the settings are per file and connection:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2, "FULL"  # noqa: SLF001
    ingestor = Ingestor(config, journal)
    frame = generate(tmp_path / "camera", count=1, size=96, seed=5)[0]
    (drop / frame.path.name).write_bytes(frame.path.read_bytes())
    log = SyncLog(monkeypatch)
    outcome = ingestor.ingest(drop / frame.path.name)
    assert outcome.accepted
    spooled = _spooled(journal, outcome.image_id)
    _check_order(log, drop, work, spooled)
    assert hashlib.sha256(spooled.read_bytes()).hexdigest() == outcome.image_id


def test_ingest_across_file_systems_syncs_the_copy_before_removing_the_original(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The camera's share on one file system, the work folder on another (here /dev/shm)."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm) next to the temporary folder")
    work = Path(shm / f"batchsight-test-{os.getpid()}")
    try:
        drop = tmp_path / "drop"
        drop.mkdir()
        config = _ingest_config(drop, work)
        ingestor = Ingestor(config, journal := Journal(config.journal_path))
        frame = generate(tmp_path / "camera", count=1, size=96, seed=6)[0]
        original = drop / frame.path.name
        original.write_bytes(frame.path.read_bytes())
        log = SyncLog(monkeypatch)
        outcome = ingestor.ingest(original)
        spooled = _spooled(journal, outcome.image_id)
        _check_order(log, drop, work, spooled)
        copied = next(n for n, (kind, path) in enumerate(log.events)
                      if kind == "fsync" and Path(path).name.startswith(".partial-"))
        assert copied < log.index("fsync", work / "staging") < log.index("unlink", original), \
            "the copy and its entry are durable before the original is removed"
        journal.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
