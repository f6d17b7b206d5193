"""A small discrete-event engine on a virtual clock, and the clock seam for the backends.

Processes are generators that yield how many virtual seconds they wait. Nothing sleeps:
a simulated day runs in well under a second.
"""
from __future__ import annotations

import heapq
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from datetime import datetime, UTC
from types import SimpleNamespace
from typing import Any

from batchsight_pipeline.backends import base

Process = Generator[float, None, Any]
# The simulated day starts at this wall-clock instant (a Monday, 00:00 UTC).
EPOCH = datetime(2026, 1, 5, tzinfo=UTC).timestamp()


class Engine:
    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0

    def at(self, time: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(time, self.now), self._seq, action))

    def spawn(self, process: Process, *, delay: float = 0.0,
              done: Callable[[Any], None] | None = None) -> None:
        """Run ``process`` from now + delay; ``done`` receives its return value."""
        def step() -> None:
            try:
                wait = next(process)
            except StopIteration as stop:
                if done is not None:
                    done(stop.value)
                return
            if wait < 0:
                raise ValueError(f"a process asked to wait {wait} s")
            self.at(self.now + wait, step)
        self.at(self.now + delay, step)

    def run(self, *, until: Callable[[], bool] | None = None, limit: float = float("inf")) -> bool:
        """Process events until ``until()`` holds (True), or nothing is left or ``limit`` passes."""
        while self._queue:
            time, _, action = heapq.heappop(self._queue)
            if time > limit:
                return False
            self.now = time
            action()
            if until is not None and until():
                return True
        return until is None or until()


@contextmanager
def backend_clock(engine: Engine) -> Iterator[None]:
    """Point the backend contract's clock at the engine, so its start-timeout rule runs virtually.

    ``backends/base.py`` reads the wall clock through its module-level ``_utc_now`` and
    ``time.time``; both are swapped for the duration of a simulation and restored after.
    (A clock argument on ModelBackend would make this patch unnecessary.)
    """
    saved_now, saved_time = base._utc_now, base.time
    base._utc_now = lambda: datetime.fromtimestamp(EPOCH + engine.now, UTC).isoformat()
    base.time = SimpleNamespace(time=lambda: EPOCH + engine.now)  # type: ignore[assignment]
    try:
        yield
    finally:
        base._utc_now, base.time = saved_now, saved_time
