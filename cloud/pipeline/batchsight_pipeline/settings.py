"""Function settings, read from the Lambda environment that cloud/template.yaml defines.

Read at call time (not import time) so one warm process can serve new settings, and so
the local emulator can run every function in-process with the template's environment.
``SettingsError`` is re-exported here, next to the settings whose errors it reports.
"""
from __future__ import annotations

from dataclasses import dataclass

from batchsight_pipeline.environment import SettingsError, number, optional, required

__all__ = ["Settings", "SettingsError"]


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
    hand_over_events: int = 10_000  # history events after which an execution hands over (history.py)
    max_scale_units: int = 1  # the ceiling of overload control (overload.py): 1 scales nothing
    backlog_target_seconds: float = 900.0  # scale so a backlog clears within this; saturated past it
    result_queue_prefix: str = ""  # results pushed to {prefix}-{device} (result_push.py); empty: none pushed
    # With the detector in the drain (the lambda backend) every worker brings its own: CheckWork runs
    # enough workers to judge the visible backlog within this many seconds. 0: DrainWorkers decides.
    drain_target_seconds: float = 0.0

    @property
    def worker_tps(self) -> float:
        """Each parallel drain worker's share of the backend's transaction rate."""
        return self.detect_tps / self.drain_workers

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            queue_url=required("QUEUE_URL"),
            dead_letter_queue_url=required("DEAD_LETTER_QUEUE_URL"),
            source_bucket=required("SOURCE_BUCKET"),
            final_bucket=required("FINAL_BUCKET"),
            backend=required("MODEL_BACKEND"),
            poll_seconds=int(number("POLL_SECONDS", 30, minimum=1)),
            start_timeout_seconds=int(number("START_TIMEOUT_SECONDS", 1800, minimum=1)),
            drain_workers=int(number("DRAIN_WORKERS", 2, minimum=1)),
            detect_concurrency=int(number("DETECT_CONCURRENCY", 4, minimum=1)),
            detect_tps=number("DETECT_TPS", 10, minimum=0.01),
            lock_table=required("LOCK_TABLE"),
            max_receive_count=int(number("MAX_RECEIVE_COUNT", 3, minimum=1)),
            hand_over_events=int(number("HANDOVER_EVENTS", 10_000, minimum=50)),
            max_scale_units=int(number("MAX_SCALE_UNITS", 1, minimum=1)),
            backlog_target_seconds=60 * number("BACKLOG_TARGET_MINUTES", 15, minimum=1),
            result_queue_prefix=optional("RESULT_QUEUE_PREFIX"),
            drain_target_seconds=number("DRAIN_TARGET_SECONDS", 0, minimum=0),
        )
