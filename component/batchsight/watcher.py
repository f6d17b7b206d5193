"""Watch the drop folder and hand over files only once they are complete.

A file counts as complete once its size and mtime have not changed for ``stable_seconds``.
inotify's "closed after writing" shortens that wait to a settle window but does not end it:
a camera may write one image in several open/write/close goes, and only a file that stays
unchanged after its close shows the last go is done. Polling observers report no closes, so
there the full ``stable_seconds`` applies. Files present at start-up go through the same
check, so nothing that arrived while the program was down is missed.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
import time
from pathlib import Path

from watchdog.events import FileClosedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

log = logging.getLogger(__name__)
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")
# How long a closed file must stay unchanged: longer than a camera's pause between the goes of
# one image, far shorter than stable_seconds needs to be without close events.
CLOSED_SETTLE_SECONDS = 1.0


def is_candidate_name(name: str) -> bool:
    """Hidden and temporary files are a camera's work in progress, not images."""
    return not name.startswith(".") and not name.lower().endswith(_TEMP_SUFFIXES)


class StabilityTracker:
    """Remembers candidate files and reports those whose size and mtime have settled."""

    def __init__(self, stable_seconds: float) -> None:
        self.stable_seconds = stable_seconds
        self.settle_seconds = min(stable_seconds, CLOSED_SETTLE_SECONDS)
        self._seen: dict[Path, tuple[int, float, float]] = {}  # path -> (size, mtime, unchanged since)
        self._closed: set[Path] = set()
        self._lock = threading.Lock()

    def touch(self, path: Path, *, closed: bool = False) -> None:
        """Note an event; a close counts only while it is the file's latest event, since any
        later one (a new go opening it, a chmod) may mean the writer is not done."""
        if not is_candidate_name(path.name):
            return
        with self._lock:
            self._seen.setdefault(path, (-1, -1.0, time.monotonic()))
            if closed:
                self._closed.add(path)
            else:
                self._closed.discard(path)

    def pending(self) -> int:
        with self._lock:
            return len(self._seen)

    def complete(self) -> list[Path]:
        """Regular files unchanged for settle_seconds after a close, else for stable_seconds.

        Vanished files and anything not a regular file are dropped.
        """
        ready: list[Path] = []
        now = time.monotonic()
        with self._lock:
            for path, (size, mtime, since) in list(self._seen.items()):
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    self._forget(path)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    self._forget(path)  # symlinks, FIFOs, folders: never ours
                    continue
                if (info.st_size, info.st_mtime) != (size, mtime):
                    self._seen[path] = (info.st_size, info.st_mtime, now)
                    continue
                wait = self.settle_seconds if path in self._closed else self.stable_seconds
                if now - since >= wait:
                    ready.append(path)
                    self._forget(path)
        return ready

    def _forget(self, path: Path) -> None:
        del self._seen[path]
        self._closed.discard(path)


class _Handler(FileSystemEventHandler):
    def __init__(self, tracker: StabilityTracker) -> None:
        self.tracker = tracker

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        target = getattr(event, "dest_path", "") or event.src_path
        self.tracker.touch(Path(os.fsdecode(target)), closed=isinstance(event, FileClosedEvent))


class DropFolderWatcher:
    """watchdog observer plus the start-up scan, feeding one StabilityTracker."""

    def __init__(self, folder: Path, stable_seconds: float) -> None:
        self.folder = folder
        self.tracker = StabilityTracker(stable_seconds)
        self._observer = Observer()

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._observer.schedule(_Handler(self.tracker), str(self.folder), recursive=False)
        self._observer.start()
        for entry in os.scandir(self.folder):
            self.tracker.touch(Path(entry.path))
        log.info("watching drop folder", extra={"folder": str(self.folder),
                                                "backlog_at_start": self.tracker.pending()})

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)

    def complete_files(self) -> list[Path]:
        return self.tracker.complete()
