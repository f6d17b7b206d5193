"""watcher.py with real files, FIFOs, symlinks and a real watchdog observer.

Timing assertions are only lower bounds that follow from the logic (a file is never complete
before stable_seconds) or generous deadlines; polling loops stop at the first success.
"""
from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from batchsight.watcher import CLOSED_SETTLE_SECONDS, DropFolderWatcher, StabilityTracker, is_candidate_name

DEADLINE = 8.0


def poll(tracker_complete: Callable[[], list[Path]], want: set[Path], *, deadline: float = DEADLINE,
         every: float = 0.02) -> tuple[set[Path], float]:
    """Call complete() until every wanted path was reported; returns everything reported and the time."""
    start = time.monotonic()
    seen: set[Path] = set()
    while time.monotonic() - start < deadline:
        seen.update(tracker_complete())
        if want <= seen:
            break
        time.sleep(every)
    return seen, time.monotonic() - start


def drain(tracker_complete: Callable[[], list[Path]], seconds: float) -> set[Path]:
    """Everything reported during a fixed window."""
    seen: set[Path] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.update(tracker_complete())
        time.sleep(0.02)
    return seen


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


# --- DropFolderWatcher with a real observer ------------------------------------------------------------

@pytest.fixture
def make_watcher(request: pytest.FixtureRequest) -> Iterator[Callable[..., DropFolderWatcher]]:
    started: list[DropFolderWatcher] = []

    def factory(folder: Path, stable_seconds: float, rescan_seconds: float = 60.0,
                subfolders: bool = True) -> DropFolderWatcher:
        watcher = DropFolderWatcher(folder, stable_seconds, rescan_seconds, subfolders)
        watcher.start()
        started.append(watcher)
        return watcher

    yield factory
    for watcher in started:
        watcher.stop()


def test_start_creates_the_folder(tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "new" / "drop"
    make_watcher(folder, 0.1)
    assert folder.is_dir()


def test_files_present_before_start_are_picked_up(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    backlog = {folder / f"old-{n}.jpg" for n in range(5)}
    for path in backlog:
        path.write_bytes(b"o" * 64)
    (folder / ".hidden.jpg").write_bytes(b"h")
    (folder / "half.jpg.part").write_bytes(b"p")
    (folder / "subdir").mkdir()
    watcher = make_watcher(folder, 0.2)
    assert watcher.tracker.pending() == 5  # hidden and temporary names and the folder never enter
    seen, _ = poll(watcher.complete_files, backlog)
    seen |= drain(watcher.complete_files, 0.3)
    assert seen == backlog


def test_file_written_after_start_is_reported(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    watcher = make_watcher(folder, 0.2)
    assert watcher.complete_files() == []
    path = folder / "new.jpg"
    with open(path, "wb") as out:
        out.write(b"n" * 1000)
    seen, elapsed = poll(watcher.complete_files, {path})
    assert seen == {path}
    assert elapsed < DEADLINE


def test_many_files_written_after_start_are_each_reported_once(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    watcher = make_watcher(folder, 0.2)
    paths = {folder / f"img-{n:03d}.png" for n in range(20)}
    for path in sorted(paths):
        path.write_bytes(path.name.encode())
    reported: list[Path] = []
    start = time.monotonic()
    while time.monotonic() - start < DEADLINE and set(reported) != paths:
        reported.extend(watcher.complete_files())
        time.sleep(0.02)
    reported.extend(drain(watcher.complete_files, 0.5))
    assert sorted(reported) == sorted(paths)


def test_temp_file_renamed_into_place_is_reported_under_its_final_name(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    watcher = make_watcher(folder, 0.2)
    temp = folder / "frame-0001.jpg.part"
    final = folder / "frame-0001.jpg"
    temp.write_bytes(b"t" * 500)
    assert drain(watcher.complete_files, 0.4) == set()
    os.rename(temp, final)
    seen, _ = poll(watcher.complete_files, {final})
    seen |= drain(watcher.complete_files, 0.3)
    assert seen == {final}


def test_file_moved_in_from_another_folder_is_reported(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    outside = tmp_path / "staging"
    outside.mkdir()
    watcher = make_watcher(folder, 0.2)
    staged = outside / "moved.jpg"
    staged.write_bytes(b"m" * 50)
    os.rename(staged, folder / "moved.jpg")
    seen, _ = poll(watcher.complete_files, {folder / "moved.jpg"})
    assert seen == {folder / "moved.jpg"}


def test_file_moved_out_is_not_reported_under_its_new_path(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    """Ingest renames files out of the drop folder: the spool must never be handed back."""
    folder = tmp_path / "drop"
    elsewhere = tmp_path / "spool"
    elsewhere.mkdir()
    watcher = make_watcher(folder, 0.1)
    path = folder / "a.jpg"
    path.write_bytes(b"a")
    poll(watcher.complete_files, {path})
    os.rename(path, elsewhere / "a.jpg")
    assert drain(watcher.complete_files, 0.6) == set()
    assert watcher.tracker.pending() == 0


def test_fifo_and_symlink_in_the_drop_folder_are_never_reported(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    os.mkfifo(folder / "before.jpg")
    watcher = make_watcher(folder, 0.1)
    os.mkfifo(folder / "after.jpg")
    target = tmp_path / "real.jpg"
    target.write_bytes(b"r")
    (folder / "link.jpg").symlink_to(target)
    real = folder / "real.jpg"
    real.write_bytes(b"r")
    seen, _ = poll(watcher.complete_files, {real})
    seen |= drain(watcher.complete_files, 0.4)
    assert seen == {real}


def test_file_written_in_two_goes_is_not_reported_after_the_first(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    watcher = make_watcher(folder, 1.5)
    path = folder / "two-goes.jpg"
    with open(path, "wb") as out:
        out.write(b"first half")
    early = drain(watcher.complete_files, 0.6)
    with open(path, "ab") as out:
        out.write(b" second half")
    assert early == set(), "reported after the first of two writes"
    seen, _ = poll(watcher.complete_files, {path})
    assert seen == {path}
    assert path.read_bytes() == b"first half second half"


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
    assert [r.files for r in warnings] == [1]  # old; not fresh, whose event could still be on its way


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


# --- subfolders -------------------------------------------------------------------------------------

def test_files_in_subfolders_old_and_new_are_reported_but_not_in_hidden_ones(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    (folder / "cam1").mkdir(parents=True)
    before = folder / "cam1" / "before.jpg"
    before.write_bytes(b"b")
    (folder / ".sync").mkdir()
    (folder / ".sync" / "partial.jpg").write_bytes(b"p")
    watcher = make_watcher(folder, 0.2)
    day = folder / "cam2" / "2026-11-24"
    day.mkdir(parents=True)  # a camera's new folder for the day, after the start
    after = day / "after.jpg"
    after.write_bytes(b"a")
    (folder / "cam1" / ".hidden.jpg").write_bytes(b"h")
    seen, _ = poll(watcher.complete_files, {before, after})
    seen |= drain(watcher.complete_files, 0.4)
    assert seen == {before, after}


def test_with_subfolders_off_only_the_drop_folder_itself_counts(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    folder = tmp_path / "drop"
    (folder / "cam1").mkdir(parents=True)
    (folder / "cam1" / "old.jpg").write_bytes(b"o")
    watcher = make_watcher(folder, 0.2, rescan_seconds=0.1, subfolders=False)
    (folder / "cam1" / "new.jpg").write_bytes(b"n")
    top = folder / "top.jpg"
    top.write_bytes(b"t")
    seen, _ = poll(watcher.complete_files, {top})
    seen |= drain(watcher.complete_files, 0.5)
    assert seen == {top}



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
    assert len(warnings) == 1 and warnings[0].path == str(path)
    assert "a name of its own" in warnings[0].getMessage()
    seen, _ = poll(tracker.complete, {path})  # once the camera stops, it is taken after all
    assert seen == {path}
