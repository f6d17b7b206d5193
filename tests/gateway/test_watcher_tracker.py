"""watcher.py's names and StabilityTracker with real files, FIFOs and symlinks: when a file is
complete (watcher_support.py says how the timing is asserted)."""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import pytest

import batchsight.watcher as watcher_module
from batchsight.watcher import CLOSED_SETTLE_SECONDS, StabilityTracker, is_candidate_name
from tests.gateway.watcher_support import drain, poll


# --- names ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [".hidden.jpg", ".~lock", "img.tmp", "img.jpg.part", "IMG.JPG.PART",
                                  "img.partial", "img.crdownload", "img.swp", "img.jpg~"])
def test_temporary_and_hidden_names_are_not_candidates(name: str) -> None:
    assert not is_candidate_name(name)


@pytest.mark.parametrize("name", ["img.jpg", "IMG_0001.JPG", "part.png", "tmp.jpeg", "a.b.c.png"])
def test_ordinary_names_are_candidates(name: str) -> None:
    assert is_candidate_name(name)


# --- StabilityTracker -------------------------------------------------------------------------------

def test_file_completes_after_stable_seconds(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x" * 100)
    tracker = StabilityTracker(stable_seconds=0.3)
    tracker.touch(path)
    assert tracker.pending() == 1
    start = time.monotonic()
    assert tracker.complete() == []  # first look only records size and mtime
    seen, _ = poll(tracker.complete, {path})
    assert seen == {path}
    assert time.monotonic() - start >= 0.3
    assert tracker.pending() == 0
    assert tracker.complete() == []  # reported once


def test_touching_again_does_not_restart_or_duplicate(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    tracker = StabilityTracker(stable_seconds=0.0)
    tracker.touch(path)
    tracker.touch(path)
    assert tracker.pending() == 1
    assert tracker.complete() == []
    assert tracker.complete() == [path]


def test_growing_file_is_not_reported_until_it_stops(tmp_path: Path) -> None:
    path = tmp_path / "growing.jpg"
    path.write_bytes(b"")
    tracker = StabilityTracker(stable_seconds=0.5)
    tracker.touch(path)
    done = threading.Event()

    def writer() -> None:
        end = time.monotonic() + 1.0
        with open(path, "ab", buffering=0) as out:
            while time.monotonic() < end:
                out.write(b"y" * 512)
                time.sleep(0.04)
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while not done.is_set():
            reported = tracker.complete()
            assert reported == [] or done.is_set(), "reported while still growing"
            time.sleep(0.02)
    finally:
        thread.join(timeout=10)
    final_size = path.stat().st_size
    seen, _ = poll(tracker.complete, {path})
    assert seen == {path}
    assert path.stat().st_size == final_size > 0


def test_closed_file_completes_after_the_settle_window_not_stable_seconds(tmp_path: Path) -> None:
    path = tmp_path / "closed.jpg"
    path.write_bytes(b"z" * 10)
    tracker = StabilityTracker(stable_seconds=3600)
    assert tracker.settle_seconds == CLOSED_SETTLE_SECONDS
    start = time.monotonic()
    tracker.touch(path, closed=True)
    assert tracker.complete() == []  # a close alone is not enough: the file must stay unchanged
    seen, _ = poll(tracker.complete, {path})
    assert seen == {path}  # well before stable_seconds
    assert time.monotonic() - start >= CLOSED_SETTLE_SECONDS
    assert tracker.pending() == 0


def test_settle_window_never_exceeds_stable_seconds(tmp_path: Path) -> None:
    path = tmp_path / "c.jpg"
    path.write_bytes(b"1")
    tracker = StabilityTracker(stable_seconds=0.0)
    assert tracker.settle_seconds == 0.0
    tracker.touch(path, closed=True)
    assert tracker.complete() == []
    assert tracker.complete() == [path]


def test_closed_after_an_earlier_open_event_completes_after_the_settle_window(tmp_path: Path) -> None:
    path = tmp_path / "c.jpg"
    path.write_bytes(b"1")
    tracker = StabilityTracker(stable_seconds=3600)
    tracker.touch(path)
    assert tracker.complete() == []
    tracker.touch(path, closed=True)
    seen, _ = poll(tracker.complete, {path})
    assert seen == {path}


def test_closed_file_that_changes_again_waits_until_it_settles(tmp_path: Path) -> None:
    path = tmp_path / "two-goes.jpg"
    path.write_bytes(b"first go")
    tracker = StabilityTracker(stable_seconds=3600)
    tracker.touch(path, closed=True)
    assert tracker.complete() == []
    time.sleep(CLOSED_SETTLE_SECONDS / 2)
    with open(path, "ab") as out:
        out.write(b", second go")
    last_change = time.monotonic()
    tracker.touch(path, closed=True)
    seen, _ = poll(tracker.complete, {path})
    assert seen == {path}
    assert time.monotonic() - last_change >= CLOSED_SETTLE_SECONDS


def test_event_after_a_close_falls_back_to_stable_seconds(tmp_path: Path) -> None:
    """A new go opening the file after its close means the close no longer says it is done."""
    path = tmp_path / "c.jpg"
    path.write_bytes(b"1")
    tracker = StabilityTracker(stable_seconds=3600)
    tracker.touch(path, closed=True)
    tracker.touch(path)
    assert drain(tracker.complete, CLOSED_SETTLE_SECONDS + 0.3) == set()
    assert tracker.pending() == 1


@pytest.mark.parametrize("name", [".hidden.jpg", "upload.tmp", "frame.jpg.part", "x.crdownload"])
def test_hidden_and_temp_names_are_ignored(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"data")
    tracker = StabilityTracker(stable_seconds=0)
    tracker.touch(path, closed=True)
    tracker.touch(path)
    assert tracker.pending() == 0
    assert tracker.complete() == []


def test_symlinks_fifos_and_directories_are_never_reported(tmp_path: Path) -> None:
    target = tmp_path / "real.jpg"
    target.write_bytes(b"r" * 10)
    link = tmp_path / "link.jpg"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.jpg"
    dangling.symlink_to(tmp_path / "missing.jpg")
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    tracker = StabilityTracker(stable_seconds=0)
    for path in (link, dangling, fifo, folder):
        tracker.touch(path)
        tracker.touch(path, closed=True)
    assert tracker.pending() == 4
    assert tracker.complete() == []  # must not block on the FIFO either
    assert tracker.complete() == []
    assert tracker.pending() == 0


def test_vanished_file_is_dropped(tmp_path: Path) -> None:
    kept = tmp_path / "kept.jpg"
    gone = tmp_path / "gone.jpg"
    gone_closed = tmp_path / "gone-closed.jpg"
    for path in (kept, gone, gone_closed):
        path.write_bytes(b"k")
    tracker = StabilityTracker(stable_seconds=0)
    tracker.touch(kept)
    tracker.touch(gone)
    tracker.touch(gone_closed, closed=True)
    gone.unlink()
    gone_closed.unlink()
    assert tracker.complete() == []
    assert tracker.pending() == 1
    assert tracker.complete() == [kept]
    assert tracker.pending() == 0


@pytest.mark.parametrize("replacement", [None, "/etc/hostname"], ids=["vanished", "symlink"])
def test_file_that_vanishes_or_turns_into_a_symlink_after_first_look_is_dropped(
        tmp_path: Path, replacement: str | None) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"a")
    tracker = StabilityTracker(stable_seconds=0)
    tracker.touch(path)
    assert tracker.complete() == []
    path.unlink()
    if replacement:
        path.symlink_to(replacement)
    assert tracker.complete() == []
    assert tracker.pending() == 0


def test_a_file_a_camera_keeps_rewriting_is_named_once_in_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """'Last image' mode: one name rewritten faster than it can settle is never read, and
    without this warning nothing would say why the line sees no results."""
    path = tmp_path / "last.jpg"
    tracker = StabilityTracker(stable_seconds=0.3, restless_seconds=0.4)
    caplog.set_level(logging.WARNING, logger="batchsight.watcher")
    tracker.touch(path)
    end = time.monotonic() + 1.2
    count = 0
    while time.monotonic() < end:
        count += 1
        path.write_bytes(b"frame %d" % count)
        assert tracker.complete() == []
        time.sleep(0.05)
    warnings = [r for r in caplog.records if "has not stopped changing" in r.getMessage()]
    assert len(warnings) == 1 and vars(warnings[0])["path"] == str(path)
    assert "a name of its own" in warnings[0].getMessage()
    seen, _ = poll(tracker.complete, {path})  # once the camera stops, it is taken after all
    assert seen == {path}


def test_an_empty_file_no_close_has_ended_waits_for_its_bytes(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that made the file and has not written yet (descheduled between its open and its
    write): stable_seconds alone does not take it, its bytes do; left empty, it is taken after
    EMPTY_SECONDS (and quarantined as empty)."""
    monkeypatch.setattr(watcher_module, "EMPTY_SECONDS", 1.0)
    waiting, left = tmp_path / "a.jpg", tmp_path / "b.jpg"
    for path in (waiting, left):
        path.write_bytes(b"")
    tracker = StabilityTracker(stable_seconds=0.1)
    tracker.touch(waiting)
    tracker.touch(left)
    assert drain(tracker.complete, 0.5) == set(), "five times stable_seconds, and still waiting"
    waiting.write_bytes(b"x" * 100)
    seen, _ = poll(tracker.complete, {waiting, left})
    assert seen == {waiting, left}
    assert waiting.stat().st_size == 100
