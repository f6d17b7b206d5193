"""The command line of ``bench/overload.py``: parse, run, print the table and the summary."""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from batchsight_tools.bench.heading import heading
from batchsight_tools.bench.overload.metrics import MetricTap
from batchsight_tools.bench.overload.report import summary, table
from batchsight_tools.bench.overload.run import OverloadConfig, run


def main(argv: list[str] | None, *, description: str) -> int:
    """Run once; 0 when every check holds (bounded, alarm, backpressure, none lost, one each, stopped)."""
    args = parse(argv, description)
    cfg = OverloadConfig(minutes=args.minutes, rate=args.rate or 2 * args.unit_tps, units=args.units,
                         unit_tps=args.unit_tps, sample_seconds=args.sample_seconds,
                         drain_minutes=args.drain_minutes)
    every = args.every * 60 if args.every else max(cfg.sample_seconds, cfg.minutes * 10)
    print(heading(argv))
    print(f"overload: {cfg.minutes:g} min at {cfg.rate:g} images/s, one unit drains {cfg.unit_tps:g}/s "
          f"(DetectTps), scaling allowed to {cfg.units} units (MaxScaleUnits), BacklogTargetMinutes 1; "
          f"moto server, the real state machine and functions, the gateway's housekeeping", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp:
        log = open(args.lambda_log, "w") if args.lambda_log else None  # noqa: SIM115 - closed below
        try:
            with MetricTap(sys.stdout, log) as tap:
                outcome = run(cfg, Path(tmp))
        finally:
            if log:
                log.close()
    print()
    print("\n".join(table(cfg, outcome, tap.loads, every)))
    print()
    lines, checks = summary(cfg, outcome, tap.loads)
    print("\n".join(lines))
    return 0 if checks.all() else 1


def parse(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--minutes", type=float, default=30.0, help="how long the line feeds")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="images a second the line sends (default: twice one unit's rate)")
    parser.add_argument("--units", type=int, default=2, help="MaxScaleUnits: the scaling ceiling")
    parser.add_argument("--unit-tps", type=float, default=1.0, help="DetectTps: what one unit drains a second")
    parser.add_argument("--every", type=float, default=0.0,
                        help="minutes per table row (default: a sixth of --minutes)")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="how often the queue and gateway are read")
    parser.add_argument("--drain-minutes", type=float, default=20.0,
                        help="at most this long for the backlog to clear once the feed ends")
    parser.add_argument("--lambda-log", help="write the functions' JSON logs and metrics to this file")
    return parser.parse_args(argv)
