"""Processes as Linux reports them in ``/proc``: memory (VmRSS now, VmHWM the peak), CPU time of a
process tree, and waiting on a process that may exit early.

Memory baselines are a bare import of the module a process runs: what the code alone costs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and every live process below it (from /proc)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # after the command name, which may hold spaces
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier += children
    return sum(cpu.get(p, 0.0) for p in tree)


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               process: subprocess.Popen[bytes], *, required: bool = True) -> None:
    """Poll ``predicate`` while ``process`` (the edge) runs; a timeout is an error only when ``required``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise RuntimeError(f"the edge program exited with {process.returncode} before {what}")
        time.sleep(0.05)
    if required:
        raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
    print(f"  (timed out after {timeout:.0f} s waiting for {what})", flush=True)
