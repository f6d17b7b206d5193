"""Hosting modelled in files, for backends that run on this machine (local, bench plug-ins).

start writes a record, the model counts as HOSTED after a warm-up, and stop closes the record
in a ledger. Files, because Lambda invocations share nothing in memory; the ledger is what the
demo and the benchmarks read hosted time from. ``RecordHostedBackend`` is a backend hosted
this way: a subclass supplies ``model_id`` and ``detect``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from batchsight_pipeline.backends.base import HOSTED, STARTING, STOPPED, ModelBackend


class HostingRecord:
    def __init__(self, state_dir: Path, startup_seconds: float) -> None:
        self.state_dir = state_dir
        self.startup_seconds = startup_seconds
        self._record_path = state_dir / "hosting.json"
        self.ledger = state_dir / "ledger.jsonl"

    def start(self, run_token: str) -> str:
        """Idempotent: a second start while hosted changes nothing."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if not self._record_path.exists():
            tmp = self._record_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"run_token": run_token, "started": time.time()}))
            os.replace(tmp, self._record_path)
        return self.status()[0]

    def status(self) -> tuple[str, str]:
        record = self._record()
        if record is None:
            return STOPPED, "not hosted"
        ready = time.time() - record["started"] >= self.startup_seconds
        return (HOSTED, "") if ready else (STARTING, "")

    def stop(self) -> None:
        record = self._record()
        if record is None:
            return
        interval = {"run_token": record["run_token"], "started": record["started"], "stopped": time.time()}
        with self.ledger.open("a") as ledger:
            ledger.write(json.dumps(interval) + "\n")
        self._record_path.unlink(missing_ok=True)

    def intervals(self) -> list[dict[str, Any]]:
        """Closed hosting intervals, oldest first."""
        if not self.ledger.exists():
            return []
        return [json.loads(x) for x in self.ledger.read_text().splitlines() if x]

    def hosted_seconds(self) -> float:
        return sum(i["stopped"] - i["started"] for i in self.intervals())

    def _record(self) -> dict[str, Any] | None:
        try:
            return json.loads(self._record_path.read_text())
        except FileNotFoundError:
            return None


class RecordHostedBackend(ModelBackend):
    """A backend whose hosting is a ``HostingRecord`` in ``state_dir``."""

    def __init__(self, *, state_dir: Path, startup_seconds: float,
                 start_timeout_seconds: float) -> None:
        super().__init__(start_timeout_seconds=start_timeout_seconds)
        self.hosting = HostingRecord(state_dir, startup_seconds)

    def _start(self, run_token: str) -> str:
        return self.hosting.start(run_token)

    def _describe(self) -> tuple[str, str]:
        return self.hosting.status()

    def _stop(self) -> None:
        self.hosting.stop()

    def _require_hosted(self) -> None:
        """What a hosted endpoint does when called while down: refuse, so a pipeline that
        forgot to start the model fails loudly here too."""
        if self.hosting.status()[0] != HOSTED:
            raise RuntimeError(f"{self.name} model is not hosted; start it first")
