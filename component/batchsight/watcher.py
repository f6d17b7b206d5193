"""Watch the drop folder and hand over files only once they are complete.

A file is complete at once when it was closed after writing (or moved into the folder) and its
stream is whole: a JPEG that starts with its start-of-image marker and ends with its
end-of-image marker, a PNG that ends with its IEND chunk. Such a file is handed over the moment
its event arrives (``on_ready``), with no wait: a camera's image is on the conveyor while we
look. Any other file counts as complete once its size and mtime have not changed for
``stable_seconds`` (an empty one that no close has ended, for ``EMPTY_SECONDS``: its writer has
not written yet); a close cuts that wait to a settle window (a camera may write one image in
several open/write/close goes, and a stream that is not whole yet shows it is not done), and
without close events (a network mount, a platform without inotify, scans) the full
``stable_seconds`` applies. Any later event on a file (a new go writing, a chmod) undoes what
its close said.

With ``subfolders`` on, files in subfolders count too (cameras that write a folder per camera
or per day); hidden folders are skipped, as hidden files are, and links are never followed.

Events are not the only way in: the folder is scanned at start-up (files that arrived while
the program was down) and again every ``rescan_seconds``, for files no event announced. inotify
drops events when its queue overflows (16,384 by default: a camera PC flushing a backlog can
do it), and reports nothing for files written by another machine on a network mount. When
inotify cannot be had at all (the user's instance or watch limit reached: a folder per hour
kept for a year is 8,760 watches), the folder is scanned every few seconds instead, and
``alarm`` says so: a gateway that cannot watch must still inspect.
The events come from watchdog's observer: on Linux its inotify emitter reports a close after
writing (``FileClosedEvent``) and a rename into the folder (``FileMovedEvent``) within a
millisecond; elsewhere (a developer's Mac) it reports no closes, and files settle. One setting
of watchdog's is ours (``MOVE_PAIRING_SECONDS``): it holds a file moved out of the folder for
half a second, in case the move's other half follows, and every event behind it waits too. Ingest
moves each image out (into staging), so at 10 images a second each close would wait behind the
last image's move; the two halves of a rename come from the kernel together, so a few
milliseconds still pair them.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper

from batchsight.config import Config
from batchsight.images import looks_whole

log = logging.getLogger(__name__)
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")
# How long a closed file whose stream is not whole yet must stay unchanged: longer than a
# camera's pause between the goes of one image, far shorter than stable_seconds needs to be
# without close events.
CLOSED_SETTLE_SECONDS = 1.0
NO_EVENTS_SCAN_SECONDS = 2.0  # how often the folder is scanned when inotify cannot be had
# A file still changing this long after it appeared: a camera rewriting one name ("last image"
# mode) never lets it settle, and nothing would ever say so.
RESTLESS_SECONDS = 60.0
# An empty file that no close has ended: its writer has made it and not written yet (a camera's
# process descheduled between its open and its write). It is not taken by stable_seconds alone,
# which would quarantine it as empty while the image is still to come into it; after this long
# without a byte it is taken (and quarantined as empty).
EMPTY_SECONDS = 30.0
MOVE_PAIRING_SECONDS = 0.02  # watchdog's wait for a move's second half (its default: 0.5 s)
_HEAD_BYTES = 128 * 1024  # a JPEG's segments up to its image data: EXIF and maker notes fit
_TAIL_BYTES = 4096         # its end-of-image marker, past any zero padding (images._TAIL)


def is_candidate_name(name: str) -> bool:
    """Hidden and temporary files are a camera's work in progress, not images."""
    return not name.startswith(".") and not name.lower().endswith(_TEMP_SUFFIXES)


def whole_stream(path: Path) -> tuple[int, float] | None:
    """(size, mtime) of a regular file whose stream is whole (``images.looks_whole``), else None.

    Two small reads, not a parse: ingest inspects every byte (images.inspect) and the decoder
    every pixel. This only tells a finished image from one still being written, so the
    finished one need not wait out a settle window.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not info.st_size:
            return None
        head = os.pread(fd, _HEAD_BYTES, 0)
        tail = head if info.st_size <= len(head) else os.pread(fd, _TAIL_BYTES, info.st_size - _TAIL_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    return (info.st_size, info.st_mtime) if looks_whole(head, tail) else None


def _new_entry() -> tuple[int, float, float, float]:
    now = time.monotonic()
    return -1, -1.0, now, now


class StabilityTracker:
    """Remembers candidate files and reports those that are complete: at once when closed with a
    whole stream, else once their size and mtime have settled."""

    def __init__(self, stable_seconds: float, restless_seconds: float = RESTLESS_SECONDS) -> None:
        self.restless_seconds = restless_seconds
        # path -> (size, mtime, unchanged since, first seen)
        self._seen: dict[Path, tuple[int, float, float, float]] = {}
        self._closed: set[Path] = set()
        self._whole: dict[Path, tuple[int, float]] = {}  # closed with a whole stream: (size, mtime) then
        self._restless: set[Path] = set()  # said once: still changing after restless_seconds
        self._lock = threading.Lock()
        self.retime(stable_seconds)

    def retime(self, stable_seconds: float) -> None:
        """Wait ``stable_seconds`` from now on. Files already tracked keep when they last
        changed, so each is judged by the new wait at the next look, never restarted."""
        with self._lock:
            self.stable_seconds = stable_seconds
            self.settle_seconds = min(stable_seconds, CLOSED_SETTLE_SECONDS)

    def notice(self, path: Path) -> bool:
        """Track a file a scan found; True when no event had announced it. A file already
        tracked keeps its state (a close it had still shortens its wait)."""
        if not is_candidate_name(path.name):
            return False
        with self._lock:
            if path in self._seen:
                return False
            self._seen[path] = _new_entry()
            return True

    def touch(self, path: Path, *, closed: bool = False) -> None:
        """Note an event; a close counts only while it is the file's latest event, since any
        later one (a new go opening it, a chmod) may mean the writer is not done."""
        if not is_candidate_name(path.name):
            return
        with self._lock:
            self._seen.setdefault(path, _new_entry())
            self._whole.pop(path, None)
            if closed:
                self._closed.add(path)
            else:
                self._closed.discard(path)

    def closed(self, path: Path) -> bool:
        """Note a close after writing (or a move into the folder); True when the file's stream is
        whole, so that ``complete`` reports it at once, without a settle window."""
        self.touch(path, closed=True)
        if not is_candidate_name(path.name):
            return False
        whole = whole_stream(path)
        with self._lock:
            if whole is None or path not in self._closed:  # taken meanwhile, or a newer event came
                return False
            self._whole[path] = whole
            return True

    def pending(self) -> int:
        with self._lock:
            return len(self._seen)

    def complete(self) -> list[Path]:
        """Regular files closed with a whole stream and unchanged since; else unchanged for
        settle_seconds after a close, or for stable_seconds.

        Vanished files and anything not a regular file are dropped.
        """
        ready: list[Path] = []
        now = time.monotonic()
        with self._lock:
            for path, (size, mtime, since, first) in list(self._seen.items()):
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    self._forget(path)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    self._forget(path)  # symlinks, FIFOs, folders: never ours
                    continue
                if self._whole.get(path) == (info.st_size, info.st_mtime):
                    ready.append(path)
                    self._forget(path)
                    continue
                if (info.st_size, info.st_mtime) != (size, mtime):
                    self._seen[path] = (info.st_size, info.st_mtime, now, first)
                    self._check_restless(path, now - first)
                    continue
                wait = self.settle_seconds if path in self._closed else self.stable_seconds
                if not info.st_size and path not in self._closed:
                    wait = max(wait, EMPTY_SECONDS)
                if now - since >= wait:
                    ready.append(path)
                    self._forget(path)
        return ready

    def _check_restless(self, path: Path, changing: float) -> None:
        if changing >= self.restless_seconds and path not in self._restless:
            self._restless.add(path)
            log.warning("a file in the drop folder has not stopped changing; it is taken once it "
                        "does. A camera that rewrites one file name is never read: give each "
                        "image a name of its own (a counter or a time stamp)",
                        extra={"path": str(path), "changing_for_s": round(changing)})

    def _forget(self, path: Path) -> None:
        del self._seen[path]
        self._closed.discard(path)
        self._whole.pop(path, None)
        self._restless.discard(path)


def _in_hidden_folder(folder: Path, path: Path) -> bool:
    """True for a file below a hidden subfolder of folder (a camera's or a sync tool's work)."""
    return any(part.startswith(".") for part in path.relative_to(folder).parts[:-1])


def _regular_files(folder: str, subfolders: bool, *, top: bool = True) -> Iterator[os.DirEntry[str]]:
    """The regular files in folder and, with subfolders, in its visible subfolders (links are
    not followed). A subfolder removed meanwhile is skipped; the drop folder itself must exist."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        if top:
            raise
        return
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                yield entry
            elif subfolders and not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                yield from _regular_files(entry.path, subfolders, top=False)
        except FileNotFoundError:
            continue  # taken away meanwhile


class _Handler(FileSystemEventHandler):
    """watchdog's events, on its observer's thread, to the watcher."""

    def __init__(self, watcher: DropFolderWatcher) -> None:
        self.watcher = watcher
        self.folder = watcher.folder

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileOpenedEvent | FileClosedNoWriteEvent):
            return  # a read (ingest's, ours) changes nothing
        if event.is_directory:
            if isinstance(event, DirCreatedEvent | DirMovedEvent):
                self.watcher.new_folder()
            return
        target = Path(os.fsdecode(getattr(event, "dest_path", "") or event.src_path))
        if target.parent != self.folder and (self.folder not in target.parents
                                             or _in_hidden_folder(self.folder, target)):
            return  # moved out of the drop folder, or into a hidden folder of it
        if isinstance(event, FileClosedEvent | FileMovedEvent):
            self.watcher.closed(target)
        else:
            self.watcher.tracker.touch(target)


class DropFolderWatcher:
    """watchdog's observer plus scans of the folder (at start, then every rescan_seconds),
    feeding one StabilityTracker. ``on_ready`` is called (on the observer's thread) when there
    is something to take now: a file closed whole, or a scan due at once."""

    def __init__(self, folder: Path, stable_seconds: float, rescan_seconds: float,
                 subfolders: bool) -> None:
        self.folder = folder
        self.rescan_seconds = rescan_seconds
        self.subfolders = subfolders
        self.tracker = StabilityTracker(stable_seconds)
        self.alarm: str | None = None  # set when the folder is scanned instead of watched
        self.on_ready: Callable[[], None] = lambda: None
        self._observer: BaseObserver | None = None
        self._scan_only_reason: str | None = None  # why file events cannot be had, if they cannot
        self._next_scan = 0.0
        self._left: set[Path] = set()  # files ingest could not read and left where they were

    def reconfigure(self, config: Config) -> None:
        """Take new ingest timings at once, from any thread.

        ``stable_seconds``: files being tracked are judged by the new wait at their next look.
        ``rescan_seconds``: the next scan moves forward when the new interval ends sooner (still
        at most NO_EVENTS_SCAN_SECONDS apart while file events cannot be had). ``subfolders``
        is not taken: it decides what the observer watches and, with the folders, what counts
        as a camera file, so like the folders it waits for a restart (live_config).
        """
        self.tracker.retime(config.ingest.stable_seconds)
        self.rescan_seconds = config.ingest.rescan_seconds
        if self._scan_only_reason is not None:
            self._scan_only(self._scan_only_reason)
        self._next_scan = min(self._next_scan, time.monotonic() + self.rescan_seconds)

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        InotifyMoveEventGrouper.delay = MOVE_PAIRING_SECONDS  # read when the observer's watch is made
        try:
            observer = Observer()
            observer.schedule(_Handler(self), str(self.folder), recursive=self.subfolders)
            observer.start()
        except OSError as exc:
            self._scan_only(str(exc.strerror or exc))
            log.error(self.alarm, extra={"folder": str(self.folder)})
        else:
            self._observer = observer
        self._scan()
        log.info("watching drop folder", extra={"folder": str(self.folder),
                                                "backlog_at_start": self.tracker.pending(),
                                                "rescan_seconds": self.rescan_seconds,
                                                "subfolders": self.subfolders})

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def closed(self, path: Path) -> None:
        """A close after writing, or a move into the folder: take the file now if it is whole."""
        if self.tracker.closed(path):
            self.on_ready()

    def new_folder(self) -> None:
        """Files may be written into a new subfolder before its watch exists: scan now."""
        self._next_scan = 0.0
        self.on_ready()

    def _scan_only(self, reason: str) -> None:
        self._scan_only_reason = reason
        self.rescan_seconds = min(self.rescan_seconds, NO_EVENTS_SCAN_SECONDS)
        self.alarm = (f"no file events for the drop folder ({reason}): it is scanned "
                      f"every {self.rescan_seconds:g} s instead; raise the sysctls "
                      "fs.inotify.max_user_instances and fs.inotify.max_user_watches, or remove old "
                      "empty subfolders")

    def complete_files(self) -> list[Path]:
        if time.monotonic() >= self._next_scan:
            missed = self._scan()
            if missed and self.alarm is None:  # scanning only: every file is found this way
                log.warning("a scan found files no event announced; they are taken now. If this "
                            "repeats, the drop folder is a network mount (set ingest.rescan_seconds "
                            "to a few seconds), bursts overflow inotify's queue (raise the sysctl "
                            "fs.inotify.max_queued_events), or subfolders go unwatched at the watch "
                            "limit (raise fs.inotify.max_user_watches)",
                            extra={"files": missed, "folder": str(self.folder)})
        return self.tracker.complete()

    def seconds_to_next_scan(self) -> float:
        """How long until complete_files scans again (a caller may sleep that long, no longer)."""
        return max(0.0, self._next_scan - time.monotonic())

    def left_in_place(self, paths: list[Path]) -> None:
        """Ingest could not read these and left them: scans offer them again, as retries, not
        as files no event announced."""
        self._left.update(paths)

    def _scan(self) -> int:
        """Track every regular file in the folder, and say how many no event had announced.

        A file ingest left in place (unreadable) is tried again, and is not counted. Nor is one
        changed within the last second, whose event may still be on its way.
        """
        missed, present = 0, set()
        recent = time.time() - CLOSED_SETTLE_SECONDS
        self._next_scan = time.monotonic() + self.rescan_seconds
        try:
            for entry in _regular_files(str(self.folder), self.subfolders):
                path = Path(entry.path)
                present.add(path)
                if self.tracker.notice(path) and path not in self._left:
                    try:
                        missed += entry.stat(follow_symlinks=False).st_mtime < recent
                    except FileNotFoundError:
                        continue  # taken away meanwhile (by the camera)
        except FileNotFoundError:
            log.error("the drop folder is gone: cameras have nowhere to write; recreate or remount "
                      "it (once it is back, the scans take its files, and a restart of the component "
                      "its events too)",
                      extra={"folder": str(self.folder)})
        self._left &= present
        return missed
