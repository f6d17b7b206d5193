"""A model backend plug-in with a fixed per-call latency, for the drain benchmark.

Used as ``MODEL_BACKEND=plugin:fixed_latency_backend:FixedLatencyBackend`` (the bench
directory on ``sys.path``). Hosting is modelled like ``backends/local.py``: start writes a
hosting record, the model is HOSTED after ``FIXED_LATENCY_START_SECONDS`` (the simulated
start time), and stop closes the record in ``ledger.jsonl``, so hosted time can be read
back. ``detect`` sleeps ``FIXED_LATENCY_SECONDS`` and answers a valid DetectAnomalyResult.

Environment:
    FIXED_LATENCY_STATE_DIR        hosting record and ledger (required)
    FIXED_LATENCY_SECONDS          per-call latency of detect (default 0.05)
    FIXED_LATENCY_START_SECONDS    simulated start time (default 5)

Every detect call is also appended to ``CALLS`` (start, end, thread) in this module: the
local emulation runs the Lambdas in the bench's own process, so the bench can read the
exact drain window and the achieved concurrency from there.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from batchsight_cloud.backends.base import HOSTED, STARTING, STOPPED, ModelBackend

CALLS: list[tuple[float, float, int]] = []
_calls_lock = threading.Lock()


class FixedLatencyBackend(ModelBackend):
    name = "fixed-latency"

    def __init__(self, *, state_dir: Path, latency_seconds: float, startup_seconds: float,
                 start_timeout_seconds: float) -> None:
        super().__init__(start_timeout_seconds=start_timeout_seconds)
        self.state_dir = state_dir
        self.latency_seconds = latency_seconds
        self.startup_seconds = startup_seconds
        self._hosting = state_dir / "hosting.json"
        self.ledger = state_dir / "ledger.jsonl"

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> "FixedLatencyBackend":
        return cls(state_dir=Path(os.environ["FIXED_LATENCY_STATE_DIR"]),
                   latency_seconds=float(os.environ.get("FIXED_LATENCY_SECONDS", "0.05")),
                   startup_seconds=float(os.environ.get("FIXED_LATENCY_START_SECONDS", "5")),
                   start_timeout_seconds=start_timeout_seconds)

    @property
    def model_id(self) -> str:
        return f"fixed-{self.latency_seconds * 1000:.0f}ms"

    def _start(self, run_token: str) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self._hosting.exists():
            tmp = self._hosting.with_suffix(".tmp")
            tmp.write_text(json.dumps({"run_token": run_token, "started": time.time()}))
            os.replace(tmp, self._hosting)
        return self._describe()[0]

    def _describe(self) -> tuple[str, str]:
        record = self._record()
        if record is None:
            return STOPPED, "not hosted"
        ready = time.time() - record["started"] >= self.startup_seconds
        return (HOSTED, "") if ready else (STARTING, "")

    def _stop(self) -> None:
        record = self._record()
        if record is None:
            return
        interval = {"run_token": record["run_token"], "started": record["started"],
                    "stopped": time.time()}
        with self.ledger.open("a") as ledger:
            ledger.write(json.dumps(interval) + "\n")
        self._hosting.unlink(missing_ok=True)

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        if self._describe()[0] != HOSTED:
            raise RuntimeError("fixed-latency model is not hosted; start it first")
        start = time.time()
        time.sleep(self.latency_seconds)
        end = time.time()
        with _calls_lock:
            CALLS.append((start, end, threading.get_ident()))
        return {"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.9}

    def _record(self) -> dict[str, Any] | None:
        try:
            return json.loads(self._hosting.read_text())
        except FileNotFoundError:
            return None

    def intervals(self) -> list[dict[str, Any]]:
        """Closed hosting intervals from the ledger."""
        if not self.ledger.exists():
            return []
        return [json.loads(x) for x in self.ledger.read_text().splitlines() if x]
