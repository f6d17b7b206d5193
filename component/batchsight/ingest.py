"""Ingest complete files in groups: stage, inspect, make durable, journal, spool; or quarantine.

Each file leaves the drop folder in one rename into work_folder/staging and is read only
there, so a camera reusing the name cannot change the bytes between our hash and our move
into the spool. A file's name is its path below the drop folder ("cam2/0001.jpg" from a
subfolder), written flat in staging and quarantine ("cam2%2F0001.jpg"). The files one tick
found complete then share one durability barrier and one journal transaction (group commit):
what a durable acknowledgment costs is paid per group, not per image. Pixels are decoded
afterwards, in the decoder's child process (verifier.py). Nothing is deleted before its result
is safe, and no move replaces a file we already keep.

A drop folder on another file system is copied into staging, and the camera's file is unlinked
only once the copy is durable (durable.move_across); a crash in between leaves both, and
``recover_staging`` removes the camera's file once it is shown to be the file staged, so it does
not come in again as a duplicate of itself.
"""
from __future__ import annotations

import errno
import filecmp
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path

from batchsight import durable
from batchsight.config import Config
from batchsight.images import CheckedImage, InvalidImage, check_size, inspect
from batchsight.journal import ImageState, Journal
from batchsight.live_config import Configured
from batchsight.names import flat, may_be_cut, unflat
from batchsight.part_context import hold_sidecar
from batchsight.quarantine import quarantine
from batchsight.quarantine import recover as recover_quarantine

log = logging.getLogger(__name__)
_STAGED_PREFIX = 33            # 16 random bytes in hex and '-' before the drop-folder name
GROUP = 256                    # files per barrier and transaction: a backlog is acknowledged in steps


@dataclass(frozen=True)
class IngestOutcome:
    path: Path
    image_id: str | None   # set when journaled
    reason: str | None     # set when quarantined
    skipped: bool = False  # unreadable: left where it was, to be tried again

    @property
    def accepted(self) -> bool:
        return self.image_id is not None


@dataclass(frozen=True)
class _Inspected:
    """A staged file that passed inspection, waiting for its group's barrier and commit."""

    staged: str
    origin: Path
    name: str
    checked: CheckedImage
    mtime: float


class Ingestor(Configured):
    def __init__(self, config: Config, journal: Journal) -> None:
        self.config = config
        self.journal = journal
        self.spool = config.work_folder / "spool"
        self.staging = config.work_folder / "staging"
        for folder in (self.spool, self.staging, config.quarantine_folder):
            folder.mkdir(parents=True, exist_ok=True)
        # the per-image path work is done on str: pathlib's parsing cost more than a rename here
        self._spool, self._staging = str(self.spool), str(self.staging)
        self._drop = f"{config.drop_folder}/"
        # an image inspected, not journaled yet: the event path offers it to the judge (detect_ahead.py)
        self.on_inspected: Callable[[CheckedImage, bytes], None] = lambda checked, data: None

    def ingest(self, path: Path) -> IngestOutcome:
        return self.ingest_many([path])[0]

    def ingest_many(self, paths: list[Path]) -> list[IngestOutcome]:
        return [outcome for group in self.ingest_groups(paths) for outcome in group]

    def ingest_groups(self, paths: list[Path]) -> Iterator[list[IngestOutcome]]:
        """Take complete files out of the drop folder into staging, check them there, and hand
        out each group's outcomes as soon as it is journaled.

        A full work folder raises at the file it hit, after the groups before it were handed
        out: the files before it are journaled or in staging (``recover_staging`` takes them),
        the rest are still in the drop folder.
        """
        for start in range(0, len(paths), GROUP):
            yield self._ingest_group(paths[start:start + GROUP])

    def _ingest_group(self, paths: list[Path]) -> list[IngestOutcome]:
        outcomes: list[IngestOutcome | None] = []
        staged: list[tuple[str, Path]] = []
        for path in paths:
            target = f"{self._staging}/{secrets.token_hex(16)}-{flat(self._name(path))}"
            outcome = self._stage(path, target)
            outcomes.append(outcome)
            if outcome is None:
                staged.append((target, path))
        done = iter(self._ingest_staged(staged))
        return [outcome or next(done) for outcome in outcomes]

    def recover_staging(self) -> list[IngestOutcome]:
        """Finish what a crash interrupted and ingest what it left in staging; run at start,
        before ingesting new files (and after a full disk). Quarantine entries come first, so a
        staged file on its way there is not ingested again."""
        recover_quarantine(self.config, self.journal)
        left = []
        for staged in sorted(self.staging.iterdir()):
            if staged.name.startswith(durable.PARTIAL):
                staged.unlink()  # an unfinished copy: its source never left the drop folder
                log.info("unfinished copy removed from staging", extra={"path": str(staged)})
            else:
                self._release_original(staged)
                left.append((str(staged), staged))
        return self._ingest_staged(left)

    def _release_original(self, staged: Path) -> None:
        """Unlink the camera's file a crash left in the drop folder after its copy came into
        staging (durable.move_across), if it is the very file staged: the path below the drop
        folder the staged name keeps, on another file system than staging (a rename leaves no
        original behind), the size and modification time the copy kept, and the same bytes. A
        file the camera wrote under that name since stays, to be ingested as a file of its own."""
        origin = self._origin(staged.name[_STAGED_PREFIX:])
        try:
            copy, original = os.stat(staged), os.lstat(origin)
            if not (stat.S_ISREG(original.st_mode) and original.st_dev != copy.st_dev
                    and (original.st_size, original.st_mtime_ns) == (copy.st_size, copy.st_mtime_ns)
                    and filecmp.cmp(staged, origin, shallow=False)):
                return
            os.unlink(origin)
            durable.fsync_dir(origin.parent)
        except FileNotFoundError:
            return  # the usual case: the move was whole, or the copy was not ours to compare
        except OSError as exc:  # a share gone away: the file comes in again, as a duplicate at worst
            log.warning("cannot compare a drop-folder file with its staged copy", extra={
                "path": str(origin), "error": str(exc)})
            return
        log.info("interrupted move finished: the camera's file left the drop folder",
                 extra={"path": str(origin), "staged": str(staged)})

    def _origin(self, flat_name: str) -> Path:
        """Where in the drop folder a staged file came from. A name cut to fit (names.flat) is
        looked for among the drop folder's files; this runs only for what a crash left."""
        origin = Path(self._drop + unflat(flat_name))
        if may_be_cut(flat_name) and not os.path.lexists(origin):
            for root, _, files in os.walk(self.config.drop_folder):
                for name in files:
                    if flat(self._name(Path(root, name))) == flat_name:
                        return Path(root, name)
        return origin

    def _stage(self, path: Path, target: str) -> IngestOutcome | None:
        """Move one file into staging; None when it is there, else what became of it."""
        if hold_sidecar(self.config.part, path):  # a part's JSON beside its image: read with it (part_context.py)
            return IngestOutcome(path, None, None, skipped=True)  # left in place: scans offer it again
        try:
            if not os.access(path, os.R_OK):  # an unreadable file stays in the drop folder, ...
                os.close(os.open(path, os.O_RDONLY))  # ... and opening it raises why (EACCES, ELOOP)
            if not durable.rename(path, target):
                durable.move_across(path, Path(target))  # copied and synced one by one; the group syncs the drop folder
        except FileNotFoundError:
            return IngestOutcome(path, None, None)  # taken away before we got to it: not ours
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # the work folder is full: the file stays in the drop folder, the runtime retries it
            return _skipped(path, path, exc)
        return None

    def _ingest_staged(self, staged: list[tuple[str, Path]]) -> list[IngestOutcome]:
        """Inspect staged files, then journal and spool the good ones under one barrier and one
        transaction; origin (the second of each pair) is reported back, in order."""
        outcomes: dict[str, IngestOutcome] = {}
        good: list[_Inspected] = []
        for path, origin in staged:
            name = unflat(os.path.basename(path)[_STAGED_PREFIX:])
            try:
                good.append(_Inspected(path, origin, name, *self._inspect(path)))
            except InvalidImage as exc:
                outcomes[path] = self._quarantine(path, name, str(exc), origin)
            except OSError as exc:
                outcomes[path] = _skipped(origin, path, exc)
        if good:
            outcomes.update(self._journal(good))
        return [outcomes[path] for path, _ in staged]

    def _journal(self, group: list[_Inspected]) -> dict[str, IngestOutcome]:
        """The camera's bytes and staging's entries are on disk before the journal names them;
        the spool's entries are synced before ingestion returns."""
        durable.sync_files([item.staged for item in group],
                           [self._staging, *{os.path.dirname(item.origin) for item in group}])
        is_new = self.journal.add_many([self._record(item) for item in group], state=ImageState.RECEIVED)
        outcomes = {}
        for item, new in zip(group, is_new, strict=True):
            spooled = self._spooled(item.checked)
            if not new and not self._interrupted_move(item.checked.image_id, spooled):
                reason = f"duplicate of image {item.checked.image_id} already journaled"
                outcomes[item.staged] = self._quarantine(item.staged, item.name, reason, item.origin)
                continue
            os.replace(item.staged, spooled)
            outcomes[item.staged] = IngestOutcome(item.origin, item.checked.image_id, None)
            log.debug("image journaled", extra={"image_id": item.checked.image_id,
                                                "file_name": item.name, "bytes": item.checked.size})
        durable.fsync_dir(self.spool)
        durable.fsync_dir(self.staging)
        # one line per group at INFO: a camera at 30 frames a second must not write 30 lines a second
        accepted = sum(o.accepted for o in outcomes.values())
        log.info("images journaled", extra={"images": accepted, "duplicates": len(group) - accepted})
        return outcomes

    def _name(self, path: Path) -> str:
        """The file's path below the drop folder ("cam2/0001.jpg"); its name if it is elsewhere."""
        where = os.fspath(path)
        return where[len(self._drop):] if where.startswith(self._drop) else path.name

    def _spooled(self, checked: CheckedImage) -> str:
        return f"{self._spool}/{checked.image_id}.{checked.ext}"

    def _record(self, item: _Inspected) -> dict[str, object]:
        checked = item.checked
        captured = datetime.fromtimestamp(item.mtime, UTC)
        return {"image_id": checked.image_id, "file_name": item.name, "path": self._spooled(checked),
                "ext": checked.ext, "size": checked.size, "width": checked.width, "height": checked.height,
                "captured_at": captured.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "route": "cloud" if self.config.inference.mode == "cloud" else None}

    def _inspect(self, staged: str) -> tuple[CheckedImage, float]:
        """Inspect a staged file and offer it to ``on_inspected``; its bytes are let go on return,
        before the next file is read, unless the judge keeps a few to detect ahead (detect_ahead.py).
        (Holding one image's bytes while the next is read makes every read of a large image
        land in fresh memory: its page faults cost a circuit-board image 0.4 ms, half a hash.)"""
        data, mtime = self._read(staged)
        checked = inspect(data, self.config.ingest)
        self.on_inspected(checked, data)
        return checked, mtime

    def _read(self, staged: str) -> tuple[bytes, float]:
        """The bytes and mtime; the size is checked on fstat first, so a huge file is never read."""
        fd = os.open(staged, os.O_RDONLY)
        try:
            info = os.fstat(fd)
            check_size(info.st_size, self.config.ingest)
            return _read_to_end(fd, info.st_size, self.config.ingest.max_bytes), info.st_mtime
        finally:
            os.close(fd)

    def _interrupted_move(self, image_id: str, spooled: str) -> bool:
        """True when an earlier run journaled this very file but died before moving it."""
        record = self.journal.get(image_id)
        return (record is not None and record.state in (ImageState.RECEIVED, ImageState.VALIDATED)
                and not os.path.exists(spooled))

    def _quarantine(self, staged: str, name: str, reason: str, origin: Path) -> IngestOutcome:
        quarantine(self.config, self.journal, Path(staged), name, reason)
        return IngestOutcome(origin, None, reason)


def _read_to_end(fd: int, size: int, limit: int) -> bytes:
    """The size fstat saw and one byte more, to tell a file that grew meanwhile; then on to its
    end, never past limit + 1 bytes. (Asking for the limit at once makes Python allocate it:
    6 MiB per image, 3 times the cost of the read.)"""
    data = os.read(fd, size + 1)
    while len(data) != size and len(data) <= limit:  # it grew or shrank since fstat
        more = os.read(fd, limit + 1 - len(data))
        if not more:
            break
        data += more
    return data


def _skipped(origin: Path, where: str | Path, exc: OSError) -> IngestOutcome:
    """A file we cannot read can be neither checked nor quarantined: leave it and say so.

    In the drop folder its next event retries it; in staging, recover_staging at the next start.
    """
    log.error("cannot read file; left in place to retry", extra={"path": str(where),
                                                                 "error": str(exc)})
    return IngestOutcome(origin, None, None, skipped=True)
