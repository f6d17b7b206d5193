"""Command-line options shared by ``batchsight plan`` and bench/cost.py."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from batchsight_tools.costmodel.billing import Billing
from batchsight_tools.costmodel.model import ModelService


@dataclass(frozen=True)
class Backend:
    """A backend's start range and price: starting points until the user measures their own."""

    name: str
    start_minutes: tuple[float, float]
    price: float  # USD per unit_hour
    unit_hour: str


# SageMaker: endpoints take "several minutes" to reach InService (5-10 is an estimate), and
# ml.m5.xlarge real-time inference is about 0.23 USD per instance-hour (us-east-1, on demand).
# Lookout for Vision (support ended 2025-10-31): 10-20 min documented, 4 USD per inference unit.
BACKENDS = {backend.name: backend for backend in (
    Backend("sagemaker", (5.0, 10.0), 0.23, "instance-hour"),
    Backend("lookoutvision", (10.0, 20.0), 4.0, "inference-unit hour"),
)}
DEFAULT_BACKEND = "sagemaker"  # cloud/template.yaml ModelBackend's default


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
    parser.add_argument("--backend", choices=list(BACKENDS), default=DEFAULT_BACKEND,
                        help="model backend whose start time and price are assumed; --start-minutes "
                             f"and --price override them (default {DEFAULT_BACKEND}, the template's "
                             "ModelBackend default)")
    parser.add_argument("--start-minutes", type=_positive, nargs=2, metavar=("LOW", "HIGH"),
                        help="model start time range, drawn per start (default from --backend: "
                             "sagemaker 5 10, an estimate of the endpoint's \"several minutes\" to "
                             "InService; lookoutvision 10 20, its documented range); pass the range "
                             "you measure on your own endpoint")
    parser.add_argument("--detect-latency", type=_positive, default=0.4, metavar="SECONDS",
                        help="one detect call (default 0.4)")
    parser.add_argument("--detect-tps", type=_positive, default=10.0, metavar="PER_SECOND",
                        help="the model's rate cap, detect calls per second (default 10)")
    parser.add_argument("--price", type=_positive, metavar="USD",
                        help="price per instance (inference-unit) hour (default from --backend: "
                             "sagemaker 0.23, ml.m5.xlarge real-time inference on demand in us-east-1, "
                             "approximate; lookoutvision 4, its published price); pass your own "
                             "instance type's price in your region")
    parser.add_argument("--units", type=int, default=1,
                        help="inference units (MinInferenceUnits) or instances (default 1)")
    parser.add_argument("--billing-seconds", type=_positive, default=60.0,
                        help="billing granularity: each hosting is rounded up to this (default 60)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for traces and start times")


def _start_minutes(args: argparse.Namespace) -> tuple[float, float]:
    low, high = sorted(args.start_minutes or BACKENDS[args.backend].start_minutes)
    return low, high


def _price(args: argparse.Namespace) -> float:
    return args.price if args.price is not None else BACKENDS[args.backend].price


def service_from(args: argparse.Namespace) -> ModelService:
    return ModelService(start_minutes=_start_minutes(args), detect_latency_seconds=args.detect_latency,
                        detect_tps=args.detect_tps, seed=args.seed)


def billing_from(args: argparse.Namespace) -> Billing:
    if args.units < 1:
        raise SystemExit("--units must be at least 1")
    return Billing(price_per_unit_hour=_price(args), units=args.units,
                   granularity_seconds=args.billing_seconds)


def backend_summary(args: argparse.Namespace) -> str:
    """The preset and the numbers in use, e.g. "backend sagemaker (start 5-10 min, 0.23 USD per
    instance-hour)"; a number the user gave names its option, so it is not read as the preset's."""
    low, high = _start_minutes(args)
    start = f"start {low:g}-{high:g} min" + (" from --start-minutes" if args.start_minutes else "")
    price = (f"{_price(args):g} USD per {BACKENDS[args.backend].unit_hour}"
             + (" from --price" if args.price is not None else ""))
    return f"backend {args.backend} ({start}, {price})"
