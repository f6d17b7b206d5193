"""Watch the drop folder and hand over files only once they are complete.

inotify reports "closed after writing"; elsewhere, and for cameras that write in several
goes, a file counts as complete once its size and mtime have not changed for
``stable_seconds``. Files present at start-up go through the same check, so nothing that
arrived while the program was down is missed.
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


def is_candidate_name(name: str) -> bool:
    """Hidden and temporary files are a camera's work in progress, not images."""
    return not name.startswith(".") and not name.lower().endswith(_TEMP_SUFFIXES)


class StabilityTracker:
    """Remembers candidate files and reports those whose size and mtime have settled."""

    def __init__(self, stable_seconds: float) -> None:
        self.stable_seconds = stable_seconds
        self._seen: dict[Path, tuple[int, float, float]] = {}  # path -> (size, mtime, unchanged since)
        self._closed: set[Path] = set()
        self._lock = threading.Lock()

    def touch(self, path: Path, *, closed: bool = False) -> None:
        if not is_candidate_name(path.name):
            return
        with self._lock:
            self._seen.setdefault(path, (-1, -1.0, time.monotonic()))
            if closed:
                self._closed.add(path)

    def pending(self) -> int:
        with self._lock:
            return len(self._seen)

    def complete(self) -> list[Path]:
        """Regular files that are closed, or unchanged for stable_seconds; drops vanished ones."""
        ready: list[Path] = []
        now = time.monotonic()
        with self._lock:
            for path, (size, mtime, since) in list(self._seen.items()):
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    del self._seen[path]
                    self._closed.discard(path)
                    continue
                if not stat.S_ISREG(info.st_mode):
                    del self._seen[path]  # symlinks, FIFOs, folders: never ours
                    continue
                if (info.st_size, info.st_mtime) != (size, mtime):
                    self._seen[path] = (info.st_size, info.st_mtime, now)
                    if path not in self._closed:
                        continue
                if path in self._closed or now - since >= self.stable_seconds:
                    ready.append(path)
                    del self._seen[path]
                    self._closed.discard(path)
        return ready


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
