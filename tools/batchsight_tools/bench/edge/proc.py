"""Memory as Linux reports it in ``/proc/<pid>/status``: VmRSS now, VmHWM the peak.

Baselines are a bare import of the module a process runs: what the code alone costs.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def status_mb(status: str, field: str) -> float:
    """``field`` (e.g. VmRSS) of a ``/proc/<pid>/status`` text, in MB."""
    for line in status.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0  # kB
    raise RuntimeError(f"{field} missing from /proc status")


def peak_mb(pid: int) -> float:
    """The process's peak RSS (VmHWM) so far, in MB."""
    return status_mb(Path(f"/proc/{pid}/status").read_text(), "VmHWM")


def bare_import_rss(module: str = "batchsight.runtime") -> float:
    """RSS of a process that only imports ``module``: what the code alone costs."""
    script = f"import {module}; print(open('/proc/self/status').read())"
    status = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    return status_mb(status, "VmRSS")


def sample_rss(process: subprocess.Popen[bytes], seconds: float) -> tuple[list[float], float]:
    """VmRSS samples (MB) over ``seconds`` after the program has started, and VmHWM at the end."""
    status = Path(f"/proc/{process.pid}/status")
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the edge program exited with {process.returncode} during the memory run")
        samples.append(status_mb(status.read_text(), "VmRSS"))
        time.sleep(0.25)
    return samples, peak_mb(process.pid)
