"""Quarantine: files that can never become a result are moved aside with a reason, never deleted.

Two ways in: a file ingest rejects (not an image, a duplicate, too large: ``quarantine``, then
journal.quarantined), and an image already journaled whose spool file is gone or damaged or
whose pixels do not decode (``set_aside``: out of the journal's images and its batch, into the
quarantine table). The move comes first and the journal row after it.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from batchsight import durable
from batchsight.config import Config
from batchsight.journal import ImageRecord, Journal
from batchsight.names import flat

log = logging.getLogger(__name__)
REASON_SUFFIX = ".reason.txt"


def quarantine(config: Config, path: Path, name: str, reason: str) -> Path:
    """Move a file aside under a name of its own, with a reason file; never delete it."""
    config.quarantine_folder.mkdir(parents=True, exist_ok=True)
    target = _claim(config.quarantine_folder, name)
    durable.move(path, target)
    target.with_name(target.name + REASON_SUFFIX).write_text(reason + "\n")
    log.warning("file quarantined", extra={"file_name": name, "reason": reason, "quarantine_path": str(target)})
    return target


def set_aside(config: Config, journal: Journal, image: ImageRecord, reason: str) -> None:
    """Quarantine a journaled image (what is left of its spool file) so nothing waits on it again."""
    path = Path(image.path)
    if path.exists():
        path = quarantine(config, path, image.file_name, reason)
    journal.set_aside(image.image_id, str(path), reason)
    log.error("image set aside", extra={"image_id": image.image_id, "reason": reason})


def _claim(folder: Path, name: str) -> Path:
    """A new '{time}-{name}' in folder, created empty with O_EXCL so a move onto it replaces
    nothing we keep; a counter separates rejects of one name within one second."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    count = 0
    while True:
        target = folder / (f"{stamp}-{count}-{flat(name)}" if count else f"{stamp}-{flat(name)}")
        count += 1
        if target.with_name(target.name + REASON_SUFFIX).exists():
            continue  # its reason file would overwrite a kept file of that name
        try:
            open(target, "x").close()
            return target
        except FileExistsError:
            continue
