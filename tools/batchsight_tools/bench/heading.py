"""The line above every table a benchmark prints: the command that produced it, and when.

The docs take the benchmarks' tables as they are printed; this line makes each one say how to
produce it again (tests/test_docs.py refuses a figure table without such a line above it).
"""
from __future__ import annotations

import datetime as dt
import os
import shlex
import sys


def command(argv: list[str] | None = None) -> str:
    """How this process was started, as a person would type it: ``python bench/edge.py --quick``."""
    program = sys.argv[0] if sys.argv else ""
    rest = sys.argv[1:] if argv is None else argv
    if program.endswith(".py"):
        return shlex.join(["python", os.path.relpath(program), *rest])
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name not in ("__main__", ""):
        return shlex.join(["python", "-m", spec.name.removesuffix(".__main__"), *rest])
    return shlex.join([os.path.basename(program) or "python", *rest])


def heading(argv: list[str] | None = None) -> str:
    """``Measured 2026-12-04 with `python bench/edge.py --quick` (2 cores).``"""
    return f"Measured {dt.date.today().isoformat()} with `{command(argv)}` ({os.cpu_count()} cores)."
