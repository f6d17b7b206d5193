"""Quarantine: files that can never become a result are moved aside with a reason, never deleted.

Two ways in: a file ingest rejects (not an image, a duplicate, too large), listed in the
journal's quarantine table, and an image already journaled whose spool file is gone or damaged
or whose pixels do not decode (``set_aside``: out of the journal's images and its batch, into
the quarantine table).

An entry is three changes no single call makes at once: the file's move, its reason file, the
journal row. A crash between them must not leave a file without its reason or its row (``status``
would not count it, and nobody could tell why it is there), nor a claimed name with nothing in it.
So a quarantine is one recoverable step: an intent file (``.pending-{name}``: source, reason,
image) and the reason file are written and synced first, then come the move and the row; the
intent goes last. ``recover`` finishes every intent a crash left (the move if it was not made, the reason
file, the row) and gives a reason and a row to a file found here without its reason file (left by
a version that wrote the reason after the move).
"""
from __future__ import annotations

import contextlib
import filecmp
import json
import logging
import os
import threading
import time
from pathlib import Path

from batchsight import durable
from batchsight.config import Config
from batchsight.journal import ImageRecord, Journal
from batchsight.names import flat

log = logging.getLogger(__name__)
REASON_SUFFIX = ".reason.txt"
PENDING = ".pending-"  # an entry on its way in: the intent, named after the file it is for
NO_REASON = ("found in quarantine without its reason file: moved here by an earlier version that was stopped"
             " before it wrote the reason, or put here by hand; why it was set aside is not known")
_in_flight: set[str] = set()  # intents this process is writing now: recover leaves them to their writer
_lock = threading.Lock()      # ingest (main loop) and the verifier's thread both quarantine
_finishing = threading.RLock()  # one finisher at a time: recover (main loop) and set_aside (verifier)


def quarantine(config: Config, journal: Journal, path: Path, name: str, reason: str, *,
               image_id: str | None = None) -> Path:
    """Move a file aside under a name of its own, with a reason file and a journal row; never
    delete it. With ``image_id`` the journaled image leaves the images for the quarantine table."""
    folder = config.quarantine_folder
    folder.mkdir(parents=True, exist_ok=True)
    intent = json.dumps({"source": str(path), "reason": reason, "image_id": image_id})
    target, pending = _claim(folder, name, intent)
    try:
        try:
            _reason_file(target).write_text(reason + "\n")
            for written in (pending, _reason_file(target)):  # the intent is durable before the move
                durable.fsync_path(written)
            durable.fsync_dir(folder)
            durable.move(path, target)
        except BaseException:
            if not os.path.lexists(target):  # nothing moved (a full disk): take the claim back, the source stays
                _reason_file(target).unlink(missing_ok=True)
                pending.unlink(missing_ok=True)
            raise
        _record(journal, target, reason, image_id)
        pending.unlink(missing_ok=True)  # unsynced: an intent found again only repeats the row
    finally:
        with _lock:
            _in_flight.discard(pending.name)
    log.warning("file quarantined", extra={"file_name": name, "reason": reason, "quarantine_path": str(target)})
    return target


def set_aside(config: Config, journal: Journal, image: ImageRecord, reason: str) -> None:
    """Quarantine a journaled image (what is left of its spool file) so nothing waits on it again."""
    path = Path(image.path)
    if path.exists():
        quarantine(config, journal, path, image.file_name, reason, image_id=image.image_id)
    elif not _finish_moved(config, journal, path):  # moved aside before a failure to record it?
        journal.set_aside(image.image_id, str(path), reason)
    log.error("image set aside", extra={"image_id": image.image_id, "reason": reason})


def recover(config: Config, journal: Journal) -> int:
    """Finish the entries a crash interrupted, and give a reason file and a row to a file found
    without one; returns how many entries were finished or given a reason."""
    folder = config.quarantine_folder
    if not folder.is_dir():
        return 0
    finished = sum(_finish(config, journal, folder / name)
                   for name in sorted(os.listdir(folder)) if name.startswith(PENDING))
    names = set(os.listdir(folder))
    for name in sorted(names):
        if name.startswith(".") or name.endswith(REASON_SUFFIX) or name + REASON_SUFFIX in names:
            continue
        path = folder / name
        with _lock:  # an entry on its way in has its reason file before its file: this one came in after the listing
            busy = PENDING + name in _in_flight or os.path.lexists(_reason_file(path))
        if not busy and path.is_file():
            _give_reason(journal, path)
            finished += 1
    return finished


def _claim(folder: Path, name: str, intent: str) -> tuple[Path, Path]:
    """A new '{time}-{name}' in folder, claimed by its intent file (marked in flight first, then
    created with O_EXCL, then the name checked free), so the move onto it replaces nothing kept;
    a counter separates rejects of one name within one second."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    count = 0
    while True:
        target = folder / (f"{stamp}-{count}-{flat(name)}" if count else f"{stamp}-{flat(name)}")
        pending = folder / (PENDING + target.name)
        count += 1
        with _lock:
            if pending.name in _in_flight:
                continue  # another thread's entry on its way in under this name
            _in_flight.add(pending.name)
        try:
            fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            with _lock:
                _in_flight.discard(pending.name)
            if isinstance(exc, FileExistsError):
                continue  # an entry a crash left under this name: recover finishes it
            raise
        try:
            os.write(fd, intent.encode())
        except BaseException:
            _release(pending)
            raise
        finally:
            os.close(fd)
        if os.path.lexists(target) or os.path.lexists(_reason_file(target)):
            _release(pending)  # kept already (a reason file alone would be overwritten)
            continue
        return target, pending


def _release(pending: Path) -> None:
    pending.unlink(missing_ok=True)
    with _lock:
        _in_flight.discard(pending.name)


def _finish(config: Config, journal: Journal, pending: Path) -> bool:
    """Complete the entry ``pending`` was written for, or take it back if its move never began;
    True when an entry was completed."""
    with _finishing:
        with _lock:
            if pending.name in _in_flight:
                return False  # its writer is at it now, on another thread
        if not pending.exists():
            return False  # finished meanwhile
        target = pending.with_name(pending.name[len(PENDING):])
        try:
            intent = json.loads(pending.read_text())
            source, reason, image_id = Path(intent["source"]), str(intent["reason"]), intent["image_id"]
        except (OSError, ValueError, KeyError, TypeError):
            intent = None  # not synced when the power went: the move had not begun, the source is where it was
        if intent is None or not (os.path.lexists(target) or os.path.lexists(source)):
            if not os.path.lexists(target):
                _reason_file(target).unlink(missing_ok=True)
            pending.unlink(missing_ok=True)
            return False
        if not os.path.lexists(target):
            durable.move(source, target)  # the crash came before the move: make it now
        elif os.path.lexists(source) and filecmp.cmp(source, target, shallow=False):
            os.unlink(source)  # a copy across file systems was whole, its source not yet removed
            durable.fsync_dir(source.parent)
        _write_reason(target, reason)
        _record(journal, target, reason, image_id)
        pending.unlink()
    log.warning("interrupted quarantine finished", extra={"quarantine_path": str(target), "reason": reason})
    return True


def _finish_moved(config: Config, journal: Journal, source: Path) -> bool:
    """An entry for ``source`` whose row the journal failed to write after the move (a full disk):
    finish it; False when there is none."""
    folder = config.quarantine_folder
    with _finishing:
        for pending in sorted(folder.glob(PENDING + "*")) if folder.is_dir() else []:
            intent: object = None
            with contextlib.suppress(OSError, ValueError):
                intent = json.loads(pending.read_text())
            if isinstance(intent, dict) and intent.get("source") == str(source):
                _finish(config, journal, pending)
                return True
    return False


def _give_reason(journal: Journal, path: Path) -> None:
    """A file without its reason file: the journal's reason if it has one, else ``NO_REASON``."""
    reason = journal.quarantine_reason(str(path))
    _write_reason(path, reason or NO_REASON)
    if reason is None:
        journal.quarantined(str(path), NO_REASON)
    log.warning("quarantined file given its reason", extra={"quarantine_path": str(path), "reason": reason})


def _write_reason(target: Path, reason: str) -> None:
    """The reason file, written and synced unless it holds the reason already."""
    reason_file = _reason_file(target)
    with contextlib.suppress(FileNotFoundError):
        if reason_file.read_text() == reason + "\n":
            return
    reason_file.write_text(reason + "\n")
    durable.fsync_path(reason_file)
    durable.fsync_dir(reason_file.parent)


def _record(journal: Journal, target: Path, reason: str, image_id: str | None) -> None:
    if image_id is None:
        journal.quarantined(str(target), reason)
    else:
        journal.set_aside(image_id, str(target), reason)


def _reason_file(target: Path) -> Path:
    return target.with_name(target.name + REASON_SUFFIX)
