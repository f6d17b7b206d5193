"""A model backend plug-in with a fixed per-call latency, for the drain benchmark.

Used as ``MODEL_BACKEND=plugin:batchsight_tools.bench.drain.fixed_latency_backend:FixedLatencyBackend``
(``FixedLatencyBackend.PLUGIN``). Hosting is a ``RecordHostedBackend``, as for the local backend:
start writes a hosting record, the model is HOSTED after ``FIXED_LATENCY_START_SECONDS``
(the simulated start time), and stop closes the record in ``ledger.jsonl``, so hosted time
can be read back. ``detect`` sleeps ``FIXED_LATENCY_SECONDS`` and answers a valid DetectAnomalyResult.

Environment:
    FIXED_LATENCY_STATE_DIR        hosting record and ledger (required)
    FIXED_LATENCY_SECONDS          per-call latency of detect (default 0.05)
    FIXED_LATENCY_START_SECONDS    simulated start time (default 5)

Every detect call is also appended to ``CALLS`` (start, end, thread) in this module: the
local emulation runs the Lambdas in the bench's own process, so the bench can read the
exact drain window and the achieved concurrency from there.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from batchsight_tools.localcloud.hosting_record import RecordHostedBackend

CALLS: list[tuple[float, float, int]] = []
_calls_lock = threading.Lock()


class FixedLatencyBackend(RecordHostedBackend):
    name = "fixed-latency"
    PLUGIN = "plugin:batchsight_tools.bench.drain.fixed_latency_backend:FixedLatencyBackend"

    def __init__(self, *, state_dir: Path, latency_seconds: float, startup_seconds: float,
                 start_timeout_seconds: float) -> None:
        super().__init__(state_dir=state_dir, startup_seconds=startup_seconds,
                         start_timeout_seconds=start_timeout_seconds)
        self.latency_seconds = latency_seconds

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> FixedLatencyBackend:
        return cls(state_dir=Path(os.environ["FIXED_LATENCY_STATE_DIR"]),
                   latency_seconds=float(os.environ.get("FIXED_LATENCY_SECONDS", "0.05")),
                   startup_seconds=float(os.environ.get("FIXED_LATENCY_START_SECONDS", "5")),
                   start_timeout_seconds=start_timeout_seconds)

    @property
    def model_id(self) -> str:
        return f"fixed-{self.latency_seconds * 1000:.0f}ms"

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        self._require_hosted()
        start = time.time()
        time.sleep(self.latency_seconds)
        end = time.time()
        with _calls_lock:
            CALLS.append((start, end, threading.get_ident()))
        return {"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.9}

    def intervals(self) -> list[dict[str, Any]]:
        """Closed hosting intervals from the ledger."""
        return self.hosting.intervals()
