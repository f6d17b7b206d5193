"""Ingest one complete file: stage it, validate it, spool and journal it; or quarantine it.

The file leaves the drop folder in one rename into work_folder/staging and is read only
there, so a camera reusing the name cannot change the bytes between our hash and our move
into the spool. Nothing is deleted before its result is safe, and no move replaces a file
we already keep.
"""
from __future__ import annotations

import errno
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from batchsight.config import Config
from batchsight.images import InvalidImage, check_image, check_size
from batchsight.journal import ImageState, Journal

log = logging.getLogger(__name__)
_STAGED_PREFIX = 33            # a uuid4 in hex and '-' before the drop-folder name
_PARTIAL = ".partial-"         # a cross-file-system copy still in progress
_REASON = ".reason.txt"


@dataclass(frozen=True)
class IngestOutcome:
    path: Path
    image_id: str | None   # set when journaled
    reason: str | None     # set when quarantined
    skipped: bool = False  # unreadable: left where it was, to be tried again

    @property
    def accepted(self) -> bool:
        return self.image_id is not None


class Ingestor:
    def __init__(self, config: Config, journal: Journal) -> None:
        self.config = config
        self.journal = journal
        self.spool = config.work_folder / "spool"
        self.staging = config.work_folder / "staging"
        for folder in (self.spool, self.staging, config.quarantine_folder):
            folder.mkdir(parents=True, exist_ok=True)

    def ingest(self, path: Path) -> IngestOutcome:
        """Take a complete file out of the drop folder into staging, then check it there."""
        staged = self.staging / f"{uuid.uuid4().hex}-{path.name}"
        try:
            open(path, "rb").close()  # an unreadable file stays in the drop folder, not in staging
            _move(path, staged)
        except FileNotFoundError:
            return IngestOutcome(path, None, None)  # taken away before we got to it: not ours
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # the work folder is full: the file stays in the drop folder, the runtime retries it
            return _skipped(path, path, exc)
        return self._ingest_staged(staged, path)

    def recover_staging(self) -> list[IngestOutcome]:
        """Ingest what a crash left in staging; run once at start, before ingesting new files."""
        outcomes = []
        for staged in sorted(self.staging.iterdir()):
            if staged.name.startswith(_PARTIAL):
                staged.unlink()  # an unfinished copy: its source never left the drop folder
                log.info("unfinished copy removed from staging", extra={"path": str(staged)})
                continue
            outcomes.append(self._ingest_staged(staged, staged))
        return outcomes

    def _ingest_staged(self, staged: Path, origin: Path) -> IngestOutcome:
        """Validate a staged file, then spool or quarantine it; origin is reported back."""
        name = staged.name[_STAGED_PREFIX:]
        try:
            data, mtime = self._read(staged)
            checked = check_image(data, self.config.ingest)
        except InvalidImage as exc:
            return self._quarantine(staged, name, str(exc), origin)
        except OSError as exc:
            return _skipped(origin, staged, exc)
        spooled = self.spool / f"{checked.image_id}.{checked.ext}"
        captured = datetime.fromtimestamp(mtime, timezone.utc)
        is_new = self.journal.add({
            "image_id": checked.image_id, "file_name": name, "path": str(spooled),
            "ext": checked.ext, "size": checked.size, "width": checked.width,
            "height": checked.height,
            "captured_at": captured.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "route": "cloud" if self.config.inference.mode == "cloud" else None})
        if not is_new and not self._interrupted_move(checked.image_id, spooled):
            reason = f"duplicate of image {checked.image_id} already journaled"
            return self._quarantine(staged, name, reason, origin)
        _move(staged, spooled)
        log.info("image journaled", extra={"image_id": checked.image_id, "file_name": name,
                                           "bytes": checked.size})
        return IngestOutcome(origin, checked.image_id, None)

    def _read(self, staged: Path) -> tuple[bytes, float]:
        """The bytes and mtime; the size is checked on fstat first, so a huge file is never read."""
        with open(staged, "rb") as source:
            info = os.fstat(source.fileno())
            check_size(info.st_size, self.config.ingest)
            # bounded even if a writer still appends: one byte over the limit is enough to refuse
            data = source.read(self.config.ingest.max_bytes + 1)
            os.fsync(source.fileno())  # the camera's bytes are on disk before the journal names them
            return data, info.st_mtime

    def _interrupted_move(self, image_id: str, spooled: Path) -> bool:
        """True when an earlier run journaled this very file but died before moving it."""
        record = self.journal.get(image_id)
        return record is not None and record.state is ImageState.VALIDATED and not spooled.exists()

    def _quarantine(self, staged: Path, name: str, reason: str, origin: Path) -> IngestOutcome:
        target = quarantine(self.config, staged, name, reason)
        self.journal.quarantined(str(target), reason)
        return IngestOutcome(origin, None, reason)


def quarantine(config: Config, path: Path, name: str, reason: str) -> Path:
    """Move a file aside under a name of its own, with a reason file; never delete it."""
    config.quarantine_folder.mkdir(parents=True, exist_ok=True)
    target = _claim(config.quarantine_folder, name)
    _move(path, target)
    target.with_name(target.name + _REASON).write_text(reason + "\n")
    log.warning("file quarantined", extra={"file_name": name, "reason": reason, "quarantine_path": str(target)})
    return target


def _skipped(origin: Path, where: Path, exc: OSError) -> IngestOutcome:
    """A file we cannot read can be neither checked nor quarantined: leave it and say so.

    In the drop folder its next event retries it; in staging, recover_staging at the next start.
    """
    log.error("cannot read file; left in place to retry", extra={"path": str(where),
                                                                 "error": str(exc)})
    return IngestOutcome(origin, None, None, skipped=True)


def _claim(folder: Path, name: str) -> Path:
    """A new '{time}-{name}' in folder, created empty with O_EXCL so a move onto it replaces
    nothing we keep; a counter separates rejects of one name within one second."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    count = 0
    while True:
        target = folder / (f"{stamp}-{count}-{name}" if count else f"{stamp}-{name}")
        count += 1
        if target.with_name(target.name + _REASON).exists():
            continue  # its reason file would overwrite a kept file of that name
        try:
            open(target, "x").close()
            return target
        except FileExistsError:
            continue


def _move(source: Path, target: Path) -> None:
    """Rename when possible; across file systems copy under a partial name, fsync, rename,
    and only then remove the source, so the target is whole or absent. Both folders are
    fsynced before returning: a power cut after a move never undoes it, and never leaves the
    file in neither folder."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        partial = target.with_name(_PARTIAL + target.name)
        try:
            with open(source, "rb") as src, open(partial, "wb") as out:
                shutil.copyfileobj(src, out)  # streamed: size limits apply only after staging
                out.flush()
                info = os.fstat(src.fileno())
                os.utime(out.fileno(), ns=(info.st_atime_ns, info.st_mtime_ns))  # captured_at
                os.fsync(out.fileno())
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)  # a full disk must not keep half a copy (the source stays)
            raise
        _fsync_dir(target.parent)  # the copy is durable before the source goes
        source.unlink()
    _fsync_dir(target.parent)
    if source.parent != target.parent:
        _fsync_dir(source.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the renames and unlinks in ``folder`` durable (a no-op where folders cannot be synced)."""
    fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
