"""Function settings, read from the Lambda environment that cloud/template.yaml defines.

Read at call time (not import time) so one warm process can serve new settings, and so
the local emulator can run every function in-process with the template's environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass


class SettingsError(ValueError):
    """A function's environment is missing or has a bad value; the message names it."""


def _require(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set; check cloud/template.yaml")
    return value


def _number(name: str, default: float, *, minimum: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError as exc:
        raise SettingsError(f"environment variable {name}={raw!r} is not a number") from exc
    if value < minimum:
        raise SettingsError(f"environment variable {name}={value} must be >= {minimum}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything a pipeline function needs to know about its stack."""

    queue_url: str
    dead_letter_queue_url: str
    source_bucket: str
    final_bucket: str
    backend: str
    poll_seconds: int
    start_timeout_seconds: int
    drain_workers: int
    detect_concurrency: int
    detect_tps: float
    lock_table: str
    max_receive_count: int = 3

    @property
    def worker_tps(self) -> float:
        """Each parallel drain worker's share of the backend's transaction rate."""
        return self.detect_tps / self.drain_workers

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            queue_url=_require("QUEUE_URL"),
            dead_letter_queue_url=_require("DEAD_LETTER_QUEUE_URL"),
            source_bucket=_require("SOURCE_BUCKET"),
            final_bucket=_require("FINAL_BUCKET"),
            backend=_require("MODEL_BACKEND"),
            poll_seconds=int(_number("POLL_SECONDS", 30, minimum=1)),
            start_timeout_seconds=int(_number("START_TIMEOUT_SECONDS", 1800, minimum=1)),
            drain_workers=int(_number("DRAIN_WORKERS", 2, minimum=1)),
            detect_concurrency=int(_number("DETECT_CONCURRENCY", 4, minimum=1)),
            detect_tps=_number("DETECT_TPS", 10, minimum=0.01),
            lock_table=_require("LOCK_TABLE"),
            max_receive_count=int(_number("MAX_RECEIVE_COUNT", 3, minimum=1)),
        )
