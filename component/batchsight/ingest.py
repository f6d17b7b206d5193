"""Ingest one complete file: validate, move it into the spool, journal it; or quarantine it.

The file leaves the drop folder in one rename, so a camera reusing the name cannot change
bytes we already hashed, and nothing is deleted before its result is safe.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from batchsight.config import Config
from batchsight.images import InvalidImage, check_image
from batchsight.journal import ImageState, Journal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestOutcome:
    path: Path
    image_id: str | None
    reason: str | None  # set when quarantined

    @property
    def accepted(self) -> bool:
        return self.reason is None


class Ingestor:
    def __init__(self, config: Config, journal: Journal) -> None:
        self.config = config
        self.journal = journal
        self.spool = config.work_folder / "spool"
        for folder in (self.spool, config.quarantine_folder):
            folder.mkdir(parents=True, exist_ok=True)

    def ingest(self, path: Path) -> IngestOutcome:
        try:
            data = path.read_bytes()
            stat = path.stat()
        except FileNotFoundError:
            return IngestOutcome(path, None, None)  # taken away before we got to it: not ours
        try:
            checked = check_image(data, self.config.ingest)
        except InvalidImage as exc:
            return self.quarantine(path, str(exc))
        spooled = self.spool / f"{checked.image_id}.{checked.ext}"
        captured = datetime.fromtimestamp(stat.st_mtime, timezone.utc)
        is_new = self.journal.add({
            "image_id": checked.image_id, "file_name": path.name, "path": str(spooled),
            "ext": checked.ext, "size": checked.size, "width": checked.width,
            "height": checked.height,
            "captured_at": captured.isoformat(timespec="milliseconds").replace("+00:00", "Z")})
        if not is_new and not self._interrupted_move(checked.image_id, spooled):
            return self.quarantine(path, f"duplicate of image {checked.image_id} already journaled")
        _move(path, spooled)
        log.info("image journaled", extra={"image_id": checked.image_id, "file_name": path.name,
                                           "bytes": checked.size})
        return IngestOutcome(path, checked.image_id, None)

    def _interrupted_move(self, image_id: str, spooled: Path) -> bool:
        """True when an earlier run journaled this very file but died before moving it."""
        record = self.journal.get(image_id)
        return record is not None and record.state is ImageState.VALIDATED and not spooled.exists()

    def quarantine(self, path: Path, reason: str) -> IngestOutcome:
        """Move the file aside with a reason file beside it; never delete it."""
        target = self.config.quarantine_folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{path.name}"
        try:
            _move(path, target)
        except FileNotFoundError:
            return IngestOutcome(path, None, None)
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
        self.journal.quarantined(str(target), reason)
        log.warning("file quarantined", extra={"file_name": path.name, "reason": reason,
                                               "quarantine_path": str(target)})
        return IngestOutcome(path, None, reason)


def _move(source: Path, target: Path) -> None:
    """Rename when possible; across file systems copy, fsync, then remove the source."""
    try:
        os.replace(source, target)
    except OSError as exc:
        if exc.errno != 18:  # EXDEV: different file system
            raise
        data = source.read_bytes()
        with open(target, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        source.unlink()
