"""The watcher's event path with a real watchdog observer on real folders: a file closed after
writing (or renamed in) whose stream is whole is ready at once; anything else still settles.

Files are written the ways cameras write them: in one go, in several goes with a close between
(the first go ending inside an EXIF thumbnail, whose own end-of-image marker must not fool the
check), renamed in from a hidden temporary name, cut short, and on a file system with no close
events. The settle window is set to a minute here, so a file reported within the deadline can
only have come by the whole-stream path (watcher_support.py says how timing is asserted).
"""
from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

import batchsight.watcher as watcher_module
from batchsight.images import looks_whole
from batchsight.watcher import DropFolderWatcher
from tests.gateway.watcher_support import DEADLINE, drain, poll


def picture(fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("L", (96, 64), color=90).save(out, format=fmt)
    return out.getvalue()


def with_thumbnail(jpeg: bytes) -> tuple[bytes, bytes]:
    """A JPEG with an APP1 (EXIF) segment holding a thumbnail, as two goes: the first ends with
    the thumbnail's own end-of-image marker."""
    thumbnail = picture("JPEG")
    segment = b"Exif\x00\x00" + thumbnail
    app1 = b"\xff\xe1" + (len(segment) + 2).to_bytes(2, "big") + segment
    whole = jpeg[:2] + app1 + jpeg[2:]
    return whole[:2 + len(app1)], whole[2 + len(app1):]


class Ready:
    """Counts the watcher's on_ready calls and lets a test wait for the next."""

    def __init__(self, watcher: DropFolderWatcher) -> None:
        self.calls = 0
        self._event = threading.Event()
        watcher.on_ready = self._ready

    def _ready(self) -> None:
        self.calls += 1
        self._event.set()

    def wait(self) -> bool:
        return self._event.wait(DEADLINE)


@pytest.fixture
def watch(tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher],
          monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[DropFolderWatcher, Ready]]:
    """A started watcher on tmp_path/drop whose settle window is a minute."""
    monkeypatch.setattr(watcher_module, "CLOSED_SETTLE_SECONDS", 60.0)

    def make(stable_seconds: float = 60.0) -> tuple[DropFolderWatcher, Ready]:
        watcher = make_watcher(tmp_path / "drop", stable_seconds)
        return watcher, Ready(watcher)

    return make


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_an_image_closed_whole_is_ready_at_once(watch: Callable[..., tuple[DropFolderWatcher, Ready]],
                                                 fmt: str) -> None:
    watcher, ready = watch()
    path = watcher.folder / f"part-1.{fmt.lower()}"
    path.write_bytes(picture(fmt))
    assert ready.wait(), "no on_ready for a whole image closed after writing"
    seen, _ = poll(watcher.complete_files, {path})
    assert seen == {path}


def test_an_image_renamed_in_from_a_hidden_temporary_name_is_ready_at_once(
        watch: Callable[..., tuple[DropFolderWatcher, Ready]]) -> None:
    watcher, ready = watch()
    temporary, path = watcher.folder / ".part-2.jpg.tmp", watcher.folder / "part-2.jpg"
    temporary.write_bytes(picture("JPEG"))
    os.replace(temporary, path)
    assert ready.wait()
    seen, _ = poll(watcher.complete_files, {path})
    assert seen == {path}


def test_an_image_written_in_goes_is_ready_only_after_its_last(
        watch: Callable[..., tuple[DropFolderWatcher, Ready]]) -> None:
    """The first go ends with the EXIF thumbnail's end-of-image marker; the segments lead to no
    image data yet, so it is not taken."""
    watcher, ready = watch()
    first, rest = with_thumbnail(picture("JPEG"))
    path = watcher.folder / "part-3.jpg"
    path.write_bytes(first)
    assert drain(watcher.complete_files, 0.5) == set() and ready.calls == 0
    with path.open("ab") as out:
        out.write(rest)
    assert ready.wait()
    seen, _ = poll(watcher.complete_files, {path})
    assert seen == {path}
    assert Image.open(path).size == (96, 64)


def test_an_image_cut_short_still_waits_for_its_settle_window(
        tmp_path: Path, make_watcher: Callable[..., DropFolderWatcher]) -> None:
    """No end-of-image marker: not taken at its close, but once it has not changed for the
    settle window (ingest then quarantines it, saying it is truncated)."""
    watcher = make_watcher(tmp_path / "drop", 30.0)
    ready = Ready(watcher)
    path = watcher.folder / "part-4.jpg"
    path.write_bytes(picture("JPEG")[:-200])
    assert drain(watcher.complete_files, 0.3) == set() and ready.calls == 0
    seen, waited = poll(watcher.complete_files, {path})
    assert seen == {path} and waited >= watcher_module.CLOSED_SETTLE_SECONDS - 0.3


def test_without_close_events_a_whole_image_waits_for_stable_seconds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system with no events (the observer cannot start): scans find the file, and only an
    unchanged size and mtime for stable_seconds says it is done."""
    def no_events() -> None:
        raise OSError(24, "inotify instance limit reached")

    monkeypatch.setattr(watcher_module, "Observer", no_events)
    watcher = DropFolderWatcher(tmp_path / "drop", 1.0, rescan_seconds=0.1, subfolders=False)
    watcher.start()
    path = watcher.folder / "part-5.jpg"
    path.write_bytes(picture("JPEG"))
    seen, waited = poll(watcher.complete_files, {path})
    assert seen == {path} and waited >= 1.0
    watcher.stop()


def test_whole_streams_are_told_from_unfinished_ones() -> None:
    jpeg, png = picture("JPEG"), picture("PNG")
    first, rest = with_thumbnail(jpeg)
    assert looks_whole(jpeg, jpeg) and looks_whole(png, png)
    assert looks_whole(first + rest, first + rest)
    assert looks_whole(jpeg, jpeg + b"\0" * 100)  # cameras pad after the end-of-image marker
    assert not looks_whole(first, first)          # ends with the thumbnail's marker, no image data yet
    assert not looks_whole(jpeg[:-2], jpeg[:-2])
    assert not looks_whole(png[:-12], png[:-12])
    assert not looks_whole(b"", b"") and not looks_whole(b"GIF89a", b"GIF89a")


def test_a_move_out_of_the_folder_holds_later_events_back_only_briefly(
        watch: Callable[..., tuple[DropFolderWatcher, Ready]], tmp_path: Path) -> None:
    """Ingest moves every image out of the drop folder (into staging); watchdog holds a move out
    for its pairing delay, and every event behind it. The watcher sets that delay to a few
    milliseconds, and a rename in the folder still pairs (the test above)."""
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

    watcher, ready = watch()
    assert InotifyMoveEventGrouper().delay == watcher_module.MOVE_PAIRING_SECONDS < 0.1
    moved = watcher.folder / "part-6.jpg"
    moved.write_bytes(picture("JPEG"))
    assert ready.wait()
    os.replace(moved, tmp_path / "elsewhere.jpg")
    path = watcher.folder / "part-7.jpg"
    path.write_bytes(picture("JPEG"))
    seen, _ = poll(watcher.complete_files, {path})
    assert path in seen


def test_a_camera_that_stalls_between_its_open_and_its_write_is_waited_for(
        watch: Callable[..., tuple[DropFolderWatcher, Ready]]) -> None:
    """The file exists, empty, for longer than stable_seconds before its bytes come (a camera's
    process descheduled under load): it is not taken empty, and its whole image is ready at its close."""
    watcher, ready = watch(stable_seconds=0.2)
    path = watcher.folder / "part-9.jpg"
    with path.open("wb") as camera:
        assert drain(watcher.complete_files, 1.0) == set() and ready.calls == 0
        camera.write(picture("JPEG"))
    assert ready.wait()
    seen, _ = poll(watcher.complete_files, {path})
    assert seen == {path} and Image.open(path).size == (96, 64)
