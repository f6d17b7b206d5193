"""Keeping a gateway healthy for months: disk guard, overdue results, journal pruning.

Each check returns an alarm text (or None) for the retained status topic, so an operator
sees why the component is holding back instead of finding out from a full disk.
"""
from __future__ import annotations

import logging
import shutil

from batchsight.config import Config
from batchsight.journal import Journal

log = logging.getLogger(__name__)
DAY = 86_400.0


class DiskGuard:
    """Refuse new images (they wait in the drop folder) rather than delete unsent ones."""

    def __init__(self, config: Config, journal: Journal) -> None:
        self.config = config
        self.journal = journal
        self.alarm: str | None = None

    def check(self) -> str | None:
        held = self.journal.pending_bytes()
        free = shutil.disk_usage(self.config.work_folder).free
        alarm = None
        if held >= self.config.disk.quota_bytes:
            alarm = (f"disk quota reached: {held} bytes of images held (quota {self.config.disk.quota_bytes});"
                     " new images wait in the drop folder until results free space")
        elif free < self.config.disk.min_free_bytes:
            alarm = (f"low disk: {free} bytes free in {self.config.work_folder} "
                     f"(minimum {self.config.disk.min_free_bytes}); new images wait in the drop folder")
        if alarm != self.alarm:
            (log.error if alarm else log.info)(alarm or "disk space available again; ingesting")
        self.alarm = alarm
        return alarm


class Housekeeper:
    """Re-submit images whose result never came; prune the journal of old, finished rows."""

    def __init__(self, config: Config, journal: Journal) -> None:
        self.config = config
        self.journal = journal
        self.alarm: str | None = None

    def resubmit_overdue(self, now: float) -> str | None:
        overdue = self.journal.overdue(older_than=now - self.config.results.timeout_seconds)
        if overdue:
            self.journal.resubmit(overdue)
            self.alarm = (f"{len(overdue)} image(s) had no result after "
                          f"{self.config.results.timeout_seconds:.0f} s and were re-submitted")
            log.error(self.alarm, extra={"image_ids": overdue[:20]})
        return self.alarm

    def prune(self, now: float) -> int:
        pruned = self.journal.prune(older_than=now - self.config.retention.journal_days * DAY)
        if pruned:
            log.info("journal pruned", extra={"images": pruned})
        return pruned
