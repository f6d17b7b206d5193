"""The metrics the functions print as EMF, caught as they are printed.

The local cloud runs the functions in this process, so their CloudWatch metrics (Embedded Metric
Format lines on stdout) are what CloudWatch would receive. The alarm PipelineOverloadedAlarm
watches ``Overloaded``; catching the lines is how the benchmark sees what the alarm would see,
and it keeps them (and the functions' JSON logs) out of the printed report.
"""
from __future__ import annotations

import io
import json
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO


@dataclass(frozen=True)
class LoadMetric:
    """One check's load metrics, when they were printed (monotonic seconds)."""

    at: float
    units: int
    overloaded: bool
    arrival_per_minute: float
    drain_per_minute: float


class MetricTap(io.TextIOBase):
    """Stands in for ``sys.stdout``: JSON lines (EMF, logs) are read and kept out; the rest passes.

    Lines are assembled per thread, since ``print`` writes the text and its newline apart and the
    functions' threads print at once."""

    def __init__(self, out: TextIO, log: TextIO | None = None) -> None:
        self.out, self.log = out, log
        self.loads: list[LoadMetric] = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        pending = getattr(self._local, "pending", "") + text
        *lines, self._local.pending = pending.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def _line(self, line: str) -> None:
        if not line.startswith("{"):
            self.out.write(line + "\n")
            return
        with self._lock:
            if self.log is not None:
                self.log.write(line + "\n")
            if '"ScaleUnits"' in line:
                self._load(line)

    def _load(self, line: str) -> None:
        try:
            m: dict[str, Any] = json.loads(line)
            self.loads.append(LoadMetric(at=time.monotonic(), units=int(_first(m["ScaleUnits"])),
                                         overloaded=bool(_first(m["Overloaded"])),
                                         arrival_per_minute=float(_first(m["ArrivalRate"])),
                                         drain_per_minute=float(_first(m["DrainRate"]))))
        except (ValueError, KeyError, TypeError):
            pass  # a line two threads broke apart: the next check prints the same metrics again

    def __enter__(self) -> MetricTap:
        self._saved = sys.stdout
        sys.stdout = self
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout = self._saved


def _first(value: Any) -> float:
    """EMF puts a metric's values in a list; Powertools prints one value per metric and flush."""
    return float(value[0] if isinstance(value, list) else value)
