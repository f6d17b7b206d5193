"""watcher.py's DropFolderWatcher with a real watchdog observer, on real folders and subfolders
(the make_watcher fixture is in conftest.py; watcher_support.py says how the timing is asserted)."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from batchsight.watcher import DropFolderWatcher
from tests.gateway.watcher_support import DEADLINE, drain, poll


# --- DropFolderWatcher with a real observer ------------------------------------------------------------

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
