"""When to cut a batch: on a schedule, at a size, or at an age, whichever comes first.

Batching is the cost lever: each batch may start the model, so small batches cost hosted
minutes and large ones cost latency. The policy is a pure function of the journal's
backlog and the clock, so the cost model in bench/ can drive it on a virtual clock.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from croniter import croniter

from batchsight.config import BatchSettings

_NOT_IN_EXECUTION_NAME = re.compile(r"[^A-Za-z0-9_-]")  # config allows '.', execution names do not


@dataclass
class BatchPolicy:
    settings: BatchSettings
    last_cut: float

    def due(self, *, waiting: int, oldest_seen: float | None, now: float) -> str | None:
        """The trigger that fires now ("size", "age", "schedule" or "interval"), or None.

        A cron ``schedule``, when set, takes the place of the fixed interval.
        """
        if waiting == 0 or oldest_seen is None:
            return None
        if waiting >= self.settings.max_images:
            return "size"
        if now - oldest_seen >= self.settings.max_age_seconds:
            return "age"
        if self.settings.schedule:
            return "schedule" if now >= next_tick(self.settings.schedule, self.last_cut) else None
        if now - self.last_cut >= self.settings.interval_seconds:
            return "interval"
        return None


def next_tick(schedule: str, after: float) -> float:
    """The first time the cron expression (UTC) fires after ``after``."""
    return float(croniter(schedule, datetime.fromtimestamp(after, timezone.utc)).get_next(float))


def new_batch_id(device: str, now: float) -> str:
    """Unique, sortable, and a valid Step Functions execution name (it becomes one)."""
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe_device = _NOT_IN_EXECUTION_NAME.sub("_", device[:40])
    return f"{safe_device}-{stamp}-{uuid.uuid4().hex[:8]}"
