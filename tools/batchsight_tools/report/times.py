"""Times as the report reads and shows them: ISO 8601 in, UTC out.

Result documents carry ``captured_at`` as ISO 8601 text (``Z`` or an offset); the command line
takes the same, and a time without a zone is UTC, as everywhere in the pipeline.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def now() -> datetime:
    return datetime.now(UTC)


def parse_time(text: str) -> datetime | None:
    """An aware datetime, or None when ``text`` is not ISO 8601."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(moment: datetime | None) -> str:
    if moment is None:
        return "?"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def display_time(value: Any) -> str:
    """A document's time as the report shows it; what a camera wrote, if it is not a time."""
    parsed = parse_time(value) if isinstance(value, str) else None
    return format_time(parsed) if parsed else str(value or "?")
