"""Command-line options shared by ``batchsight plan`` and bench/cost.py."""
from __future__ import annotations

import argparse
from pathlib import Path

from batchsight_cloud.costmodel.billing import Billing
from batchsight_cloud.costmodel.model import ModelService


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", type=Path, metavar="CSV",
                        help="arrival times in seconds, one per line (first column; a header is allowed)")
    parser.add_argument("--budget-minutes", type=_positive, default=60.0,
                        help="latency budget, image drop to result (default 60)")
    parser.add_argument("--start-minutes", type=_positive, nargs=2, default=(10.0, 20.0),
                        metavar=("LOW", "HIGH"),
                        help="model start time range, drawn per start (default 10 20: Lookout for "
                             "Vision's documented range; SageMaker endpoints take several minutes)")
    parser.add_argument("--detect-latency", type=_positive, default=0.4, metavar="SECONDS",
                        help="one detect call (default 0.4)")
    parser.add_argument("--detect-tps", type=_positive, default=10.0, metavar="PER_SECOND",
                        help="the model's rate cap, detect calls per second (default 10)")
    parser.add_argument("--price", type=_positive, default=4.0, metavar="USD",
                        help="price per inference-unit (instance) hour (default 4)")
    parser.add_argument("--units", type=int, default=1,
                        help="inference units (MinInferenceUnits) or instances (default 1)")
    parser.add_argument("--billing-seconds", type=_positive, default=60.0,
                        help="billing granularity: each hosting is rounded up to this (default 60)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for traces and start times")


def service_from(args: argparse.Namespace) -> ModelService:
    low, high = sorted(args.start_minutes)
    return ModelService(start_minutes=(low, high), detect_latency_seconds=args.detect_latency,
                        detect_tps=args.detect_tps, seed=args.seed)


def billing_from(args: argparse.Namespace) -> Billing:
    if args.units < 1:
        raise SystemExit("--units must be at least 1")
    return Billing(price_per_unit_hour=args.price, units=args.units,
                   granularity_seconds=args.billing_seconds)
