"""What a report covers: the site/line/device filters and one batch or a time range.

The key layout narrows the listing before any document is read: the filters become the
listing prefix, and the key's date (the UTC day of ``captured_at``) drops days outside the
range. The document itself then decides, by its ``batch_id`` or exact ``captured_at``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from batchsight_tools.report.times import format_time, now, parse_time

RESULT_KEY = re.compile(r"^results/([^/]+)/([^/]+)/([^/]+)/(\d{4})/(\d{2})/(\d{2})/([0-9a-f]{64})\.json$")


@dataclass(frozen=True)
class Selection:
    bucket: str
    site: str | None = None
    line: str | None = None
    device: str | None = None
    batch: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def prefix(self) -> str:
        """The longest key prefix the site/line/device filters allow."""
        prefix = "results/"
        for part in (self.site, self.line, self.device):
            if part is None:
                break
            prefix += part + "/"
        return prefix

    def key_matches(self, key: str) -> bool:
        """Whether ``key`` is a result document's key that the filters and the days allow."""
        match = RESULT_KEY.match(key)
        if match is None:
            return False
        site, line, device, yyyy, mm, dd, _ = match.groups()
        for wanted, actual in ((self.site, site), (self.line, line), (self.device, device)):
            if wanted is not None and wanted != actual:
                return False
        if self.since is None:
            return True
        day = date(int(yyyy), int(mm), int(dd))  # the key's day is captured_at's UTC day
        return self.since.date() <= day <= ((self.until or now()) - timedelta(microseconds=1)).date()

    def document_matches(self, document: dict[str, Any]) -> bool:
        if self.batch is not None and document.get("batch_id") != self.batch:
            return False
        if self.since is not None:
            captured = parse_time(str(document.get("captured_at", "")))
            if captured is None or captured < self.since or captured >= (self.until or now()):
                return False
        return True

    def describe(self) -> str:
        filters = [f"{name} {value}" for name, value in
                   (("site", self.site), ("line", self.line), ("device", self.device)) if value is not None]
        scope = ", ".join(filters) if filters else "all sites, lines and devices"
        if self.batch is not None:
            return f"Batch {self.batch}; {scope}"
        until = format_time(self.until) if self.until else "now"
        return f"Images captured from {format_time(self.since)} to {until}; {scope}"
