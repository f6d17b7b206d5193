"""When to cut a batch: on a schedule, at a size, or at an age, whichever comes first.

Batching is the cost lever: each batch may start the model, so small batches cost hosted
minutes and large ones cost latency. The policy is a pure function of the journal's
backlog and the clock, so the cost model in bench/ can drive it on a virtual clock.
"""
from __future__ import annotations

import re
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, UTC

from croniter import croniter

from batchsight.config import BatchSettings, Config

_NOT_IN_EXECUTION_NAME = re.compile(r"[^A-Za-z0-9_-]")  # config allows '.', execution names do not


_REMEMBERED_BATCHES = 1024
# A waiting image seen more than this in the future: the clock was set back since (NTP after a
# boot without a real-time clock, or by hand). Smaller steps only shift the age trigger a little.
CLOCK_STEP_SECONDS = 60.0


@dataclass
class BatchPolicy:
    settings: BatchSettings
    last_cut: float
    follow_pending: bool = False
    _seen_hosting: OrderedDict[str, None] = field(default_factory=OrderedDict)

    def due(self, *, waiting: int, oldest_seen: float | None, now: float) -> str | None:
        """The trigger that fires now ("size", "follow", "age", "clock", "schedule", "interval"),
        or None.

        A cron ``schedule``, when set, takes the place of the fixed interval. When the clock is
        set back, the interval counts from now (not from a last cut in the future), and images
        seen "in the future" go at once ("clock"): their age is unknown, and waiting for the
        clock to catch up would hold them for as long as it was set back.
        """
        self.last_cut = min(self.last_cut, now)
        if waiting == 0 or oldest_seen is None:
            self.follow_pending = False
            return None
        if waiting >= self.settings.max_images:
            return "size"
        if self.follow_pending:
            self.follow_pending = False
            return "follow"
        if now - oldest_seen >= self.settings.max_age_seconds:
            return "age"
        if oldest_seen - now > CLOCK_STEP_SECONDS:
            return "clock"
        if self.settings.schedule:
            return "schedule" if now >= next_tick(self.settings.schedule, self.last_cut) else None
        if now - self.last_cut >= self.settings.interval_seconds:
            return "interval"
        return None

    def reconfigure(self, config: Config) -> None:
        """New batching settings apply from the next ``due``: the last cut and the batches seen
        hosting are kept, so a shorter interval or a new schedule counts from the last cut."""
        self.settings = config.batch

    def model_hosted(self, batch_id: str) -> None:
        """A first result of ``batch_id`` arrived, so the model is hosted right now.

        Images that reached the gateway while the model was starting would otherwise wait for
        their own age trigger and pay for a start of their own; cutting them now lets them
        ride this hosting (the running execution drains them, or picks them up after its
        release). Once per batch, and never for a batch that was itself such a follower.
        """
        if self.settings.follow and batch_id not in self._seen_hosting:
            self._remember(batch_id)
            self.follow_pending = True

    def cut(self, batch_id: str, trigger: str, now: float) -> None:
        """Record a cut; a follow batch does not trigger another follow."""
        self.last_cut = now
        if trigger == "follow":
            self._remember(batch_id)

    def _remember(self, batch_id: str) -> None:
        self._seen_hosting[batch_id] = None
        while len(self._seen_hosting) > _REMEMBERED_BATCHES:
            self._seen_hosting.popitem(last=False)


def next_tick(schedule: str, after: float) -> float:
    """The first time the cron expression (UTC) fires after ``after``."""
    return float(croniter(schedule, datetime.fromtimestamp(after, UTC)).get_next(float))


def new_batch_id(device: str, now: float) -> str:
    """Unique, sortable, and a valid Step Functions execution name (it becomes one)."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    safe_device = _NOT_IN_EXECUTION_NAME.sub("_", device[:40])
    return f"{safe_device}-{stamp}-{uuid.uuid4().hex[:8]}"
