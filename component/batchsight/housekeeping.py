"""Keeping a gateway healthy for months: disk guard, overdue results, journal pruning.

Each check returns an alarm text (or None) for the retained status topic, so an operator
sees why the component is holding back instead of finding out from a full disk.

Alerts judged at the edge are held a while for operators' answers (alerter.py, feedback.py):
they go after ``retention.feedback_hours``, and at once, oldest first, when the disk runs low:
a convenience for labelling must never hold the line back.
"""
from __future__ import annotations

import errno
import logging
import shutil
import sqlite3
from pathlib import Path

from batchsight.config import Config
from batchsight.journal import Journal
from batchsight.live_config import Configured
from batchsight.lost_images import LossCheck, PipelineStatus

log = logging.getLogger(__name__)
DAY = 86_400.0


def _held(config: Config) -> list[tuple[float, Path]]:
    """The held images, oldest first."""
    found = []
    for path in config.held_folder.glob("*") if config.held_folder.is_dir() else ():
        try:
            found.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue
    return sorted(found)


def release_held(config: Config, *, older_than: float | None = None) -> int:
    """Delete held images: those held since before ``older_than``, or (None) the oldest until the
    work folder has its minimum free space again. How many went."""
    released = 0
    for held_at, path in _held(config):
        if older_than is not None and held_at >= older_than:
            break
        if older_than is None and shutil.disk_usage(config.work_folder).free >= config.disk.min_free_bytes:
            break
        path.unlink(missing_ok=True)
        released += 1
    return released


def disk_full(exc: BaseException) -> bool:
    """True for "no space left": ENOSPC or EDQUOT from the OS, SQLITE_FULL from the journal."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.OperationalError):
        return (getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                or "database or disk is full" in str(exc))
    return False


class DiskGuard(Configured):
    """Refuse new images (they wait in the drop folder) rather than delete unsent ones.

    The thresholds keep the file system from filling up; when it fills up anyway (another
    program, thresholds set to 0), ``full`` is told by the main loop and holds ingestion the
    same way until there is room for at least one more image of the largest allowed size.
    """

    def __init__(self, config: Config, journal: Journal) -> None:
        self.config = config
        self.journal = journal
        self.alarm: str | None = None
        self.state: str | None = None  # None, "full", "quota" or "low": what holds ingestion back
        self._full_error: str | None = None  # set while the file system reported itself full

    def full(self, exc: BaseException) -> bool:
        """The file system ran out of space under us; returns True when this is news."""
        self._full_error = str(exc)
        return self._set("full", self._full_alarm())

    def _full_alarm(self) -> str:
        return (f"disk full in {self.config.work_folder} ({self._full_error}); new images wait in the "
                "drop folder and nothing is lost; free space to resume")[:500]  # the status schema's limit

    def check(self) -> str | None:
        held = self.journal.pending_bytes()
        free = shutil.disk_usage(self.config.work_folder).free
        if self._full_error is not None and free >= max(self.config.disk.min_free_bytes,
                                                        self.config.ingest.max_bytes):
            self._full_error = None  # room for the largest image again: try
        if self._full_error is not None:
            self._set("full", self._full_alarm())
        elif held >= self.config.disk.quota_bytes:
            self._set("quota", f"disk quota reached: {held} bytes of images held (quota "
                      f"{self.config.disk.quota_bytes}); new images wait in the drop folder until results free space")
        elif free < self.config.disk.min_free_bytes and release_held(self.config):
            log.warning("low disk: held alerts released early (their answers can no longer become labels)")
            self._set(None, None)
        elif free < self.config.disk.min_free_bytes:
            self._set("low", f"low disk: {free} bytes free in {self.config.work_folder} "
                      f"(minimum {self.config.disk.min_free_bytes}); new images wait in the drop folder")
        else:
            self._set(None, None)
        return self.alarm

    def _set(self, state: str | None, alarm: str | None) -> bool:
        """Keep the alarm text current; log only when the state changes (the byte counts in the
        text change all the time on a busy disk, and a log line per tick would fill it further)."""
        changed = state != self.state
        if changed:
            (log.error if alarm else log.info)(alarm or "disk space available again; ingesting")
        self.state, self.alarm = state, alarm
        return changed


class Housekeeper(Configured):
    """Re-submit images the cloud confirms lost; say when the cloud is saturated; prune the journal.

    A late result (``results.timeout_seconds``) alone re-sends nothing: the image is nearly always
    still queued in the cloud, and re-sending it adds load when the pipeline can least take it.
    Only images the cloud confirms lost (lost_images.py) go back to a new batch.
    """

    def __init__(self, config: Config, journal: Journal, *, losses: LossCheck | None = None) -> None:
        self.config = config
        self.journal = journal
        self.losses = losses
        self.alarm: str | None = None

    def resubmit_overdue(self, now: float) -> str | None:
        """Check the late images and the cloud's load; the alarm for the status topic, or None."""
        overdue = self.journal.overdue(older_than=now - self.config.results.timeout_seconds)
        status = self.losses.status() if self.losses else None
        self.alarm = _backpressure_alarm(status)
        if not overdue:
            return self.alarm
        lost = self._confirmed_lost(status, now)
        if lost:
            self.journal.resubmit(lost)
            log.error("images the cloud confirms lost were re-submitted", extra={"image_ids": lost[:20]})
        held = len(overdue) - len(lost)
        parts = [self.alarm] if self.alarm else []
        if lost:
            parts.append(f"{len(lost)} image(s) the cloud lost (no upload, no queued message) were re-submitted")
        if held:
            parts.append(f"{held} image(s) have no result after {self.config.results.timeout_seconds:.0f} s and "
                         f"are still held by the cloud or unconfirmed: kept spooled, not re-sent "
                         f"(check the pipeline's dashboard)")
        self.alarm = "; ".join(parts)
        log.warning(self.alarm)
        return self.alarm

    def _confirmed_lost(self, status: PipelineStatus | None, now: float) -> list[str]:
        """Late images submitted before the cloud's queue was last seen empty, whose upload is gone."""
        if self.losses is None or status is None or status.queue_empty_at is None:
            return []
        before_empty = self.journal.overdue(older_than=min(now - self.config.results.timeout_seconds,
                                                           status.queue_empty_at))
        if not before_empty:
            return []
        return self.losses.lost(self.journal.get_many(before_empty))

    def prune(self, now: float) -> int:
        release_held(self.config, older_than=now - self.config.retention.feedback_hours * 3600)
        pruned = self.journal.prune(older_than=now - self.config.retention.journal_days * DAY)
        if pruned:
            log.info("journal pruned", extra={"images": pruned})
        return pruned


def _backpressure_alarm(status: PipelineStatus | None) -> str | None:
    """The cloud's own word that it cannot keep up, for the component's status topic."""
    if status is None or not status.backpressure:
        return None
    return (f"cloud pipeline saturated ({status.backlog} images waiting): images stay spooled here and "
            f"only confirmed losses are re-sent. {status.reason}").strip()
