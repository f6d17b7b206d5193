"""What the watcher tests share: polling a watcher or tracker until files are reported.

Timing assertions are only lower bounds that follow from the logic (a file is never complete
before stable_seconds) or generous deadlines; polling loops stop at the first success.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

DEADLINE = 8.0


def poll(tracker_complete: Callable[[], list[Path]], want: set[Path], *, deadline: float = DEADLINE,
         every: float = 0.02) -> tuple[set[Path], float]:
    """Call complete() until every wanted path was reported; returns everything reported and the time."""
    start = time.monotonic()
    seen: set[Path] = set()
    while time.monotonic() - start < deadline:
        seen.update(tracker_complete())
        if want <= seen:
            break
        time.sleep(every)
    return seen, time.monotonic() - start


def drain(tracker_complete: Callable[[], list[Path]], seconds: float) -> set[Path]:
    """Everything reported during a fixed window."""
    seen: set[Path] = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        seen.update(tracker_complete())
        time.sleep(0.02)
    return seen
