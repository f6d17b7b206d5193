"""SIGTERM and SIGINT end the demo the way its normal end does: every process it started is stopped,
its temp folders removed.

Why a module of its own: Python's default SIGTERM ends the process at once, skipping every
``finally``, so the edge program and the broker would live on as orphans. Here a signal becomes
``Stopped``, an exception that unwinds the demo's ExitStack. While a child process is being
started and registered for clean-up (``deferred``), and once clean-up has begun (``closing``), a
signal is only noted: a child is never started unregistered, and a second Ctrl-C cannot cut the
clean-up short.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """A signal asked the demo to stop. BaseException, like KeyboardInterrupt: no library's
    ``except Exception`` may swallow it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)


class SignalGuard:
    def __init__(self) -> None:
        self.received: int | None = None
        self._held = 0
        self._closing = False
        self._previous: dict[int, Any] = {}

    def install(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._on_signal)
        return self

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        if not self._held and not self._closing:
            raise Stopped(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Start a child and register its clean-up in here: a signal waits until both are done."""
        self._held += 1
        try:
            yield
        finally:
            self._held -= 1
        if not self._held and not self._closing and self.received is not None:
            raise Stopped(self.received)

    def closing(self) -> None:
        """Clean-up begins: from now on signals are only noted."""
        self._closing = True
