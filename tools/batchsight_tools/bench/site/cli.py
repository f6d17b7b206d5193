"""The command line of ``bench/site.py``: parse, run, print the table per model and the checks."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from batchsight_tools.bench.heading import heading
from batchsight_tools.bench.site.report import checks, summary, table
from batchsight_tools.bench.site.run import PRODUCTS, SiteConfig, run
from batchsight_tools.number_arguments import whole_number


def main(argv: list[str] | None, *, description: str) -> int:
    """Run once; 0 when every image has exactly one result, at its own gateway, by its own model."""
    args = parse(argv, description)
    cfg = SiteConfig(gateways=args.gateways, models=args.models, minutes=args.minutes,
                     batch_seconds=args.batch_seconds, images_per_batch=args.images_per_batch,
                     drain_seconds=args.drain_seconds)
    print(heading(argv))
    print(f"site: {cfg.gateways} gateways on {cfg.models} models (one local stack, a model route each beyond the "
          f"first), each sending {cfg.images_per_batch} images every {cfg.batch_seconds:g} s for {cfg.minutes:g} min;"
          " moto server, the real state machine and functions, the local backend", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
        outcome = run(cfg, Path(tmp))
    print()
    print("\n".join(table(outcome)))
    print()
    print("\n".join(summary(cfg, outcome)))
    return 0 if checks(outcome).all() else 1


def parse(argv: list[str] | None, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--gateways", type=whole_number(1, 100), default=40, help="simulated gateways (default 40)")
    parser.add_argument("--models", type=whole_number(1, len(PRODUCTS)), default=3,
                        help=f"models, one route each beyond the stack's own (default 3, at most {len(PRODUCTS)})")
    parser.add_argument("--minutes", type=float, default=2.0, help="how long the gateways send (default 2)")
    parser.add_argument("--batch-seconds", type=float, default=30.0,
                        help="each gateway sends a batch this often (default 30)")
    parser.add_argument("--images-per-batch", type=whole_number(1, 10), default=2, help="images a batch (default 2)")
    parser.add_argument("--drain-seconds", type=float, default=240.0,
                        help="at most this long for the last results once the sending ends (default 240)")
    return parser.parse_args(argv)
