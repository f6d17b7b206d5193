"""Disk guard, overdue results and journal pruning, on a real journal file."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from batchsight.batcher import BatchPolicy, next_tick
from batchsight.config import BatchSettings, Config, config_from_dict
from batchsight.housekeeping import DiskGuard, Housekeeper
from batchsight.journal import ImageState, Journal
from tests.gateway.journal_support import row


def _config(tmp_path: Path, **extra: object) -> Config:
    return config_from_dict({
        "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
        "aws": {"source_bucket": "s", "final_bucket": "f", "queue_url": "q", "state_machine_arn": "a"},
        **extra})


def _add(journal: Journal, n: int, size: int = 1000) -> str:
    image_id = f"{n:064x}"
    journal.add({"image_id": image_id, "file_name": f"{n}.jpg", "path": f"/x/{n}.jpg", "ext": "jpg",
                 "size": size, "width": 64, "height": 64, "captured_at": "2026-11-23T10:00:00.000Z"})
    return image_id


def test_disk_guard_raises_an_alarm_at_the_quota_and_clears_it(tmp_path: Path) -> None:
    config = _config(tmp_path, disk={"quota_bytes": 2500})
    journal = Journal(config.journal_path)
    guard = DiskGuard(config, journal)
    ids = [_add(journal, n) for n in range(2)]
    assert guard.check() is None
    _add(journal, 3, size=600)
    alarm = guard.check()
    assert alarm and "quota" in alarm and "drop folder" in alarm
    journal.advance(ids, ImageState.RESULT_STORED)
    journal.advance(ids, ImageState.ALERTED)
    assert guard.check() is None, "published images no longer count against the quota"


def test_low_free_space_is_an_alarm(tmp_path: Path) -> None:
    config = _config(tmp_path, disk={"min_free_bytes": 2 ** 62})
    guard = DiskGuard(config, Journal(config.journal_path))
    assert "low disk" in (guard.check() or "")


def test_a_late_result_alone_re_sends_nothing(tmp_path: Path) -> None:
    """Without the cloud's word that an image is lost (no status to read), it stays spooled."""
    config = _config(tmp_path, results={"timeout_seconds": 60})
    journal = Journal(config.journal_path)
    image_id = _add(journal, 1)
    journal.cut_batch("b1", max_images=10)
    journal.advance([image_id], ImageState.SUBMITTED)
    keeper = Housekeeper(config, journal)
    assert keeper.resubmit_overdue(time.time()) is None
    alarm = keeper.resubmit_overdue(time.time() + 61)
    assert alarm and "not re-sent" in alarm
    assert row(journal, image_id).state is ImageState.SUBMITTED


def test_prune_forgets_only_old_finished_images(tmp_path: Path) -> None:
    config = _config(tmp_path, retention={"journal_days": 1})
    journal = Journal(config.journal_path)
    done, waiting = _add(journal, 1), _add(journal, 2)
    journal.advance([done], ImageState.RESULT_STORED)
    journal.advance([done], ImageState.ALERTED)
    keeper = Housekeeper(config, journal)
    assert keeper.prune(time.time()) == 0
    assert keeper.prune(time.time() + 2 * 86_400) == 1
    assert journal.get(done) is None and journal.get(waiting) is not None


def test_cron_schedule_replaces_the_interval() -> None:
    hour = 3600.0
    policy = BatchPolicy(BatchSettings(interval_seconds=60, max_age_seconds=10 * hour, schedule="0 * * * *"),
                         last_cut=10 * hour + 5)
    assert next_tick("0 * * * *", 10 * hour + 5) == 11 * hour
    assert policy.due(waiting=1, oldest_seen=10 * hour + 6, now=10 * hour + 600) is None
    assert policy.due(waiting=1, oldest_seen=10 * hour + 6, now=11 * hour) == "schedule"


@pytest.mark.parametrize("state", [ImageState.VALIDATED, ImageState.ENQUEUED])
def test_resubmit_touches_only_submitted_images(tmp_path: Path, state: ImageState) -> None:
    config = _config(tmp_path)
    journal = Journal(config.journal_path)
    image_id = _add(journal, 1)
    journal.advance([image_id], state)
    journal.resubmit([image_id])
    assert row(journal, image_id).state is state


def test_disk_full_recognises_the_os_and_sqlite_saying_no_space(tmp_path: Path) -> None:
    import errno
    import sqlite3

    from batchsight.housekeeping import disk_full

    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert disk_full(sqlite3.OperationalError("database or disk is full"))
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not disk_full(sqlite3.OperationalError("database is locked"))
    assert not disk_full(RuntimeError("No space left on device"))


def test_a_full_disk_is_one_alarm_and_one_log_line_until_it_clears(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """The alarm text follows the latest error; the log says it once (a line per tick would fill the disk)."""
    import errno
    import logging

    config = _config(tmp_path, disk={"min_free_bytes": 0}, ingest={"max_bytes": 1 << 60})  # never room enough
    guard = DiskGuard(config, Journal(config.journal_path))
    with caplog.at_level(logging.INFO, logger="batchsight.housekeeping"):
        assert guard.full(OSError(errno.ENOSPC, "No space left on device")) is True
        for _ in range(5):
            assert guard.check() and guard.state == "full"
        assert guard.full(OSError(errno.ENOSPC, "No space left on device")) is False
    alarm = guard.alarm or ""
    assert "disk full" in alarm and "nothing is lost" in alarm and len(alarm) <= 500
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    guard.config = _config(tmp_path, disk={"min_free_bytes": 0})  # room for the largest image again
    assert guard.check() is None and guard.state is None
