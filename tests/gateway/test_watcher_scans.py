"""watcher.py's scans: files no event announced (an inotify overflow, no inotify at all), files
ingest left in place, a drop folder that goes away; and new timings taken while it runs."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import batchsight.watcher as watcher_module
from batchsight.config import Config
from batchsight.watcher import CLOSED_SETTLE_SECONDS, NO_EVENTS_SCAN_SECONDS, DropFolderWatcher
from tests.gateway.watcher_support import DEADLINE, drain, poll


# --- scans: files no event announced ---------------------------------------------------------------

def test_a_scan_takes_files_no_event_announced_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The observer is never started here, so only the scans can find the files."""
    folder = tmp_path / "drop"
    folder.mkdir()
    watcher = DropFolderWatcher(folder, 0.1, rescan_seconds=0.2, subfolders=True)
    old, fresh, archive = folder / "old.jpg", folder / "fresh.jpg", folder / "archive"
    old.write_bytes(b"o")
    archive.mkdir()  # a folder is never an image, nor a missed one
    for path in (old, archive):
        os.utime(path, (time.time() - 60, time.time() - 60))
    caplog.set_level(logging.WARNING, logger="batchsight.watcher")
    assert watcher.complete_files() == []  # the first call scans: both tracked, neither settled yet
    fresh.write_bytes(b"f")

    def ingest() -> list[Path]:  # takes what is complete out of the folder, as ingest does
        ready = watcher.complete_files()
        for path in ready:
            path.unlink()
        return ready

    seen, _ = poll(ingest, {old, fresh})
    seen |= drain(ingest, 0.5)  # later scans find nothing more
    assert seen == {old, fresh}
    warnings = [r for r in caplog.records if "no event announced" in r.getMessage()]
    assert [vars(r)["files"] for r in warnings] == [1]  # old; not fresh, whose event could still be on its way


def test_a_file_ingest_left_in_place_is_tried_again_without_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Ingest leaves an unreadable file where it was: each scan offers it again."""
    folder = tmp_path / "drop"
    folder.mkdir()
    stuck = folder / "stuck.jpg"
    stuck.write_bytes(b"s")
    os.utime(stuck, (time.time() - 60, time.time() - 60))
    watcher = DropFolderWatcher(folder, 0.05, rescan_seconds=0.1, subfolders=True)
    caplog.set_level(logging.WARNING, logger="batchsight.watcher")
    first, _ = poll(watcher.complete_files, {stuck})
    watcher.left_in_place([stuck])
    caplog.clear()
    again, _ = poll(watcher.complete_files, {stuck})
    assert first == again == {stuck}
    assert not [r for r in caplog.records if "no event announced" in r.getMessage()]


def test_a_rescan_does_not_undo_a_close_event(tmp_path: Path) -> None:
    """A scan finding a tracked file must not make it wait stable_seconds instead of the
    settle window its close earned."""
    folder = tmp_path / "drop"
    folder.mkdir()
    watcher = DropFolderWatcher(folder, 30.0, rescan_seconds=0.05, subfolders=True)
    path = folder / "closed.jpg"
    path.write_bytes(b"c")
    watcher.tracker.touch(path, closed=True)
    seen, elapsed = poll(watcher.complete_files, {path}, deadline=CLOSED_SETTLE_SECONDS * 6)
    assert seen == {path} and elapsed < 30.0


MAX_QUEUED = Path("/proc/sys/fs/inotify/max_queued_events")
MAX_INSTANCES = Path("/proc/sys/fs/inotify/max_user_instances")


@contextlib.contextmanager
def inotify_limit(setting: Path, value: str) -> Iterator[None]:
    """An inotify sysctl set to value while the block makes its watcher (an instance reads its
    limits when it is made), restored at once: the machine's other programs keep theirs."""
    before = setting.read_text()
    setting.write_text(value)
    try:
        yield
    finally:
        setting.write_text(before)


@pytest.mark.skipif(not os.access(MAX_QUEUED, os.W_OK), reason="needs root to shrink the inotify queue")
def test_files_whose_events_an_inotify_overflow_dropped_are_taken_by_the_rescan(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher],
        caplog: pytest.LogCaptureFixture) -> None:
    """A real overflow: the watcher's inotify instance gets a queue of 4 events (the limit is read
    when an instance is made, and restored at once), and another process writes 300 files."""
    folder = tmp_path / "drop"
    folder.mkdir()
    caplog.set_level(logging.WARNING)
    with inotify_limit(MAX_QUEUED, "4"):
        watcher = make_watcher(folder, 0.2, rescan_seconds=1.0)
    subprocess.run(["sh", "-c", f'for n in $(seq 1 300); do echo "$n" > "{folder}/f$n.jpg"; done'],
                   check=True)
    wanted = {folder / f"f{n}.jpg" for n in range(1, 301)}
    seen, _ = poll(watcher.complete_files, wanted, deadline=DEADLINE + 5)
    assert any("overflow" in r.getMessage() for r in caplog.records), "the queue never overflowed"
    assert seen == wanted


@pytest.mark.skipif(not os.access(MAX_INSTANCES, os.W_OK), reason="needs root to lower the inotify instance limit")
def test_without_inotify_the_folder_is_scanned_every_few_seconds_and_an_alarm_says_why(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    """The user's inotify instances used up (limit 0 while the watcher starts, restored at once):
    the component must still take files, and say why it is slower."""
    folder = tmp_path / "drop"
    with inotify_limit(MAX_INSTANCES, "0"):
        watcher = make_watcher(folder, 0.2, rescan_seconds=30.0)
    assert watcher.alarm is not None and "no file events" in watcher.alarm
    assert "max_user_instances" in watcher.alarm and "scanned every 2 s" in watcher.alarm
    path = folder / "cam1" / "a.jpg"
    path.parent.mkdir()
    path.write_bytes(b"a")
    seen, elapsed = poll(watcher.complete_files, {path})
    assert seen == {path} and elapsed < DEADLINE


def test_a_drop_folder_that_vanishes_is_reported_not_fatal_and_used_again_once_back(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher],
        caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "drop"
    watcher = make_watcher(folder, 0.1, rescan_seconds=0.1)
    caplog.set_level(logging.ERROR, logger="batchsight.watcher")
    folder.rmdir()  # unmounted, or removed by hand
    assert drain(watcher.complete_files, 0.3) == set()
    assert any("drop folder is gone" in r.getMessage() for r in caplog.records)
    folder.mkdir()
    path = folder / "back.jpg"
    path.write_bytes(b"b")
    seen, _ = poll(watcher.complete_files, {path})
    assert seen == {path}


# --- a configuration update while it runs ----------------------------------------------------------

def with_ingest(config: Config, **settings: Any) -> Config:
    return dataclasses.replace(config, ingest=dataclasses.replace(config.ingest, **settings))


def test_a_reload_judges_files_already_tracked_by_the_new_stable_seconds(tmp_path: Path, config: Config) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    watcher = DropFolderWatcher(folder, 3600.0, rescan_seconds=3600.0, subfolders=True)
    path = folder / "waiting.jpg"
    path.write_bytes(b"w")
    watcher.tracker.touch(path)
    assert drain(watcher.complete_files, 0.3) == set(), "an hour's wait"
    watcher.reconfigure(with_ingest(config, stable_seconds=0.1))
    assert (watcher.tracker.stable_seconds, watcher.tracker.settle_seconds) == (0.1, 0.1)
    seen, elapsed = poll(watcher.complete_files, {path})
    assert seen == {path} and elapsed < DEADLINE


def test_a_reload_brings_the_next_scan_forward_and_keeps_subfolders(tmp_path: Path, config: Config) -> None:
    """The observer is never started here, so only the scans can find the file."""
    folder = tmp_path / "drop"
    folder.mkdir()
    watcher = DropFolderWatcher(folder, 0.05, rescan_seconds=3600.0, subfolders=True)
    assert watcher.complete_files() == []  # the first scan; the next one is an hour away
    path = folder / "unannounced.jpg"
    path.write_bytes(b"u")
    assert drain(watcher.complete_files, 0.3) == set()
    watcher.reconfigure(with_ingest(config, rescan_seconds=0.1, subfolders=False))
    assert watcher.rescan_seconds == 0.1
    assert watcher.subfolders is True, "what the observer watches changes only with a restart"
    seen, _ = poll(watcher.complete_files, {path})
    assert seen == {path}


def test_without_file_events_a_reload_keeps_the_scans_a_few_seconds_apart(
        tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_inotify() -> None:
        raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(watcher_module, "Observer", no_inotify)
    watcher = DropFolderWatcher(tmp_path / "drop", 0.1, rescan_seconds=30.0, subfolders=True)
    watcher.start()
    assert watcher.rescan_seconds == NO_EVENTS_SCAN_SECONDS and watcher.alarm is not None
    watcher.reconfigure(with_ingest(config, rescan_seconds=60.0))
    assert watcher.rescan_seconds == NO_EVENTS_SCAN_SECONDS
    assert "inotify instance limit reached" in watcher.alarm
    watcher.reconfigure(with_ingest(config, rescan_seconds=0.5))
    assert watcher.rescan_seconds == 0.5 and "every 0.5 s" in watcher.alarm
    watcher.stop()
