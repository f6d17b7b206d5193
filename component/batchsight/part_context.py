"""Part context: the part id and lot of every image, from its file name or a sidecar JSON file.

A line's camera (or the PC behind it) knows which part it photographed; it says so in the file
name (``part.file_pattern``, a regular expression with the named groups ``part_id`` and ``lot``,
searched in the file's path below the drop folder: ``LOT42/P000123.jpg``) or in a small JSON file
beside the image (``part.sidecar``: ``P000123.json`` or ``P000123.jpg.json`` holding
``{"part_id": "P000123", "lot": "LOT42"}``; its values win over the name's). The pair is
journaled with the image in the same transaction (``PartJournal``) and travels from there into
the S3 metadata, the SQS message, the result document, the MQTT payloads, OPC UA and Sparkplug.

The sidecar must be in place when the image is taken: written before it, or within
``ingest.stable_seconds`` after it. It is never ingested itself (``hold_sidecar``, asked by ingest
for each file it takes) and is deleted once its image is journaled; one left an hour without
its image is deleted too.
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from batchsight.config import Config
from batchsight.config_plant import PART_GROUPS, PartSettings
from batchsight.journal import Journal

log = logging.getLogger(__name__)
MAX_SIDECAR_BYTES = 64 * 1024
MAX_VALUE_CHARS = 128           # a part id or lot longer than this is cut (the payloads stay small)
ORPHAN_SECONDS = 3600.0         # a sidecar whose image never came is deleted after this long
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def hold_sidecar(settings: PartSettings, path: Path) -> bool:
    """True for a part's sidecar in the drop folder: it stays there to be read with its image and
    is never ingested itself. One without an image beside it for an hour is deleted here (ingest
    sees it again at each scan of the folder), so the drop folder does not fill."""
    if not settings.sidecar or not path.name.lower().endswith(".json"):
        return False
    try:
        age = time.time() - path.stat().st_mtime
        if age > ORPHAN_SECONDS and not _images_beside(path):
            path.unlink()
            log.warning("part sidecar without an image deleted", extra={"path": str(path), "age_s": round(age)})
    except OSError:
        pass  # gone already, or not ours to delete: it is never ingested either way
    return True


def _images_beside(sidecar: Path) -> bool:
    stem = sidecar.name[:-5]
    names = {stem, stem.rsplit(".", 1)[0]}
    return any(p.name != sidecar.name and (p.name in names or p.stem in names) for p in sidecar.parent.iterdir())


def _clean(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = _CONTROL.sub("", str(value)).strip()[:MAX_VALUE_CHARS]
    return text or None


class PartContext:
    """The part id and lot of a file, by its path below the drop folder."""

    def __init__(self, settings: PartSettings, drop_folder: Path) -> None:
        self.settings = settings
        self.drop_folder = drop_folder
        self._pattern = re.compile(settings.file_pattern) if settings.file_pattern else None
        self._read: dict[str, tuple[Path, int, int]] = {}  # file name -> its sidecar as read (inode, mtime)

    @property
    def active(self) -> bool:
        return self._pattern is not None or self.settings.sidecar

    def of(self, file_name: str) -> dict[str, str | None]:
        values: dict[str, str | None] = dict.fromkeys(PART_GROUPS)
        if self._pattern is not None and (match := self._pattern.search(file_name)):
            found = match.groupdict()
            values.update({k: _clean(found.get(k)) for k in PART_GROUPS if found.get(k) is not None})
        if self.settings.sidecar:
            values.update({k: v for k, v in self._sidecar(file_name).items() if v is not None})
        return values

    def _sidecar(self, file_name: str) -> dict[str, str | None]:
        image = self.drop_folder / file_name
        for path in (image.with_suffix(".json"), image.with_name(image.name + ".json")):
            try:
                with path.open("rb") as handle:
                    info = os.fstat(handle.fileno())
                    raw = handle.read(MAX_SIDECAR_BYTES + 1)
            except OSError:
                continue
            try:
                if len(raw) > MAX_SIDECAR_BYTES:
                    raise ValueError(f"over {MAX_SIDECAR_BYTES} bytes")
                data = json.loads(raw)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                log.warning("part sidecar unreadable; the image goes on without it",
                            extra={"path": str(path), "error": str(exc)})
                self._read[file_name] = (path, info.st_ino, info.st_mtime_ns)
                return {}
            self._read[file_name] = (path, info.st_ino, info.st_mtime_ns)
            return {k: _clean(data.get(k)) for k in PART_GROUPS}
        return {}

    def consumed(self, file_names: Iterable[str]) -> None:
        """The images are journaled with their part context: their sidecars (as read, not a newer
        file written under the same name since) go."""
        for name in file_names:
            entry = self._read.pop(name, None)
            if entry is None:
                continue
            path, inode, mtime = entry
            try:
                info = path.stat()
                if (info.st_ino, info.st_mtime_ns) == (inode, mtime):
                    path.unlink()
            except OSError:
                pass  # gone already: nothing to tidy


class PartJournal(Journal):
    """The journal, with each new image's part id and lot filled in as it is added (ingest's group
    commit), so the pair is in the same transaction as the image itself."""

    def __init__(self, path: Path, config: Config) -> None:
        super().__init__(path)
        self.context = PartContext(config.part, config.drop_folder)

    def reconfigure(self, config: Config) -> None:
        if config.part != self.context.settings or config.drop_folder != self.context.drop_folder:
            self.context = PartContext(config.part, config.drop_folder)

    def add_many(self, records: list[dict[str, Any]], **kwargs: Any) -> list[bool]:
        context = self.context
        if not context.active:
            return super().add_many(records, **kwargs)
        names = [str(record["file_name"]) for record in records]
        is_new = super().add_many([{**context.of(name), **record} for name, record in zip(names, records,
                                                                                           strict=True)], **kwargs)
        context.consumed(names)
        return is_new
