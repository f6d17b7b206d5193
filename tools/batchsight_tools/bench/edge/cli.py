"""The run of ``bench/edge.py``: the chosen sections in order, then the summary and the table.

A section's module is imported only when it runs, so ``--only ingest`` measures in a process
that has not loaded the detector, the MQTT client or the local cloud.
"""
from __future__ import annotations

import argparse
import importlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from batchsight_tools.bench.edge.figures import Figures
from batchsight_tools.bench.edge.sizes import QUICK, Sizes
from batchsight_tools.localcloud.stack import CREDENTIALS

SECTIONS = ("ingest", "upload", "latency", "memory", "detection")
Section = Callable[[Path, Sizes, Path, Figures], None]


def main(argv: list[str] | None, *, description: str, data: Path) -> int:
    """Parse ``argv`` (``--data`` defaults to ``data``) and run; 0 when every goal is met."""
    args, sections = parse(argv, description, data)
    figures = Figures()
    started = time.perf_counter()
    run(sections, QUICK if args.quick else Sizes(), args.data, figures, quick=args.quick, keep=args.keep)
    ok = figures.summary(time.perf_counter() - started)
    if args.markdown:
        args.markdown.write_text(figures.markdown())
    return 0 if ok else 1


def parse(argv: list[str] | None, description: str, data: Path) -> tuple[argparse.Namespace, list[str]]:
    """The arguments, and the sections chosen with ``--only`` (all by default)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small counts (seconds, not minutes)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--data", type=Path, default=data)
    parser.add_argument("--markdown", type=Path, help="also write the figures as a markdown table here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, journals)")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section {sorted(unknown)[0]}; choose from {', '.join(SECTIONS)}")
    return args, chosen


def run(sections: list[str], sizes: Sizes, data: Path, figures: Figures, *, quick: bool, keep: bool) -> None:
    """Each section in a work folder of its own under one temporary folder (kept with ``keep``)."""
    os.environ.update(CREDENTIALS)  # moto accepts any credentials; boto3 wants some
    work = Path(tempfile.mkdtemp(prefix="batchsight-bench-edge-"))
    print(f"bench/edge.py ({'quick' if quick else 'full'}; {os.cpu_count()} cores, load "
          f"{load()}; work {work})", flush=True)
    try:
        for name in sections:
            section_started = time.perf_counter()
            section(name)(data, sizes, work / name, figures)
            print(f"  ({name}: {time.perf_counter() - section_started:.0f} s, load {load()})", flush=True)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def section(name: str) -> Section:
    """``bench_<name>`` of the module ``<name>``, imported now."""
    bench: Section = getattr(importlib.import_module(f"batchsight_tools.bench.edge.{name}"), f"bench_{name}")
    return bench


def load() -> str:
    """The 1-minute load average: on a shared 2-core machine, read the figures with it."""
    return f"{os.getloadavg()[0]:.1f}"
