"""Command-line options shared by ``batchsight plan`` and bench/cost.py."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import cast

from batchsight_tools.costmodel.backends import HOSTED_BACKENDS, PRESETS
from batchsight_tools.costmodel.billing import Billing
from batchsight_tools.costmodel.images import DEFAULT_IMAGES, Images
from batchsight_tools.costmodel.model import ModelService
from batchsight_tools.costmodel.prices import PriceBook, price_book, with_price


BACKENDS = PRESETS  # every backend the cost model prices (backends.py)
HOSTED_DEFAULT = "sagemaker"  # the hosted backend whose start/stop schedules are compared by default


def positive(text: str) -> float:
    """A finite number above 0 (an argparse type; `batchsight plan --rate` uses it too)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number above 0 (an argparse type: `bench/cost.py --lines`)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, got {text!r}")
    return int(text)


def _fraction(text: str) -> float:
    """A number from 0 to 1 (an argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def _count(text: str) -> int:
    """A whole number from 1 (an argparse type)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1, got {text!r}")
    return int(text)


def _trace_file(text: str) -> Path:
    """A file that exists (what it holds, read_trace checks)."""
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{'a folder, not a file' if path.is_dir() else 'no such file'} {text!r}; "
                                         "give a CSV of arrival times in seconds, one per line")
    return path


class _Range(argparse.Action):
    """--start-minutes LOW HIGH: LOW first; a reversed pair is a mistake worth saying, not sorting."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        low, high = cast(list[float], values)
        if low > high:
            parser.error(f"argument {option_string}: LOW {low:g} is above HIGH {high:g}; give the range "
                         f"low first, e.g. {option_string} {high:g} {low:g}")
        setattr(namespace, self.dest, (low, high))


def add_model_arguments(parser: argparse.ArgumentParser, *, backend_default: str | None = HOSTED_DEFAULT,
                        backend_help: str = "", backends: tuple[str, ...] = tuple(PRESETS)) -> None:
    """The options ``batchsight plan`` and bench/cost.py share: the trace, the budget, the images,
    the backends' figures. ``backend_*`` say what --backend means to the command."""
    parser.add_argument("--trace", type=_trace_file, metavar="CSV",
                        help="arrival times in seconds, one per line (first column; a header is allowed) "
                             "(default: none)")
    parser.add_argument("--budget-minutes", type=positive, default=60.0,
                        help="latency budget: every image from its drop to its result on the gateway "
                             "(default 60)")
    parser.add_argument("--backend", choices=list(backends), default=backend_default,
                        help=backend_help or f"model backend (default {backend_default})")
    parser.add_argument("--detector-ms", type=positive, default=DEFAULT_IMAGES.detector_ms, metavar="MS",
                        help="the detector's time for one image on one vCPU, as batchsight evaluate or "
                             "bench/detector_eval.py measure it; judges the images on the lambda and "
                             f"sagemaker-serverless backends (default {DEFAULT_IMAGES.detector_ms:g})")
    parser.add_argument("--image-kb", type=positive, default=DEFAULT_IMAGES.image_bytes / 1000, metavar="KB",
                        help=f"size of one image (default {DEFAULT_IMAGES.image_bytes / 1000:g})")
    parser.add_argument("--anomaly-rate", type=_fraction, default=DEFAULT_IMAGES.anomaly_rate, metavar="FRACTION",
                        help="share of anomalous images: each gets a mask, a second pass and one more PUT "
                             f"(default {DEFAULT_IMAGES.anomaly_rate:g})")
    parser.add_argument("--cold-start-seconds", type=positive, metavar="SECONDS",
                        help="a cold drain function of the lambda backend (imports, model fetch) (default "
                             f"{PRESETS['lambda'].drain_cold_seconds:g}, an estimate: pass what you measure)")
    parser.add_argument("--start-minutes", type=positive, nargs=2, metavar=("LOW", "HIGH"), action=_Range,
                        help="a hosted model's start time range, drawn per start, LOW <= HIGH (default from "
                             "the backend: sagemaker 5 10, an estimate of the endpoint's \"several minutes\" to "
                             "InService; lookoutvision 10 20, its documented range); pass the range "
                             "you measure on your own endpoint")
    parser.add_argument("--detect-latency", type=positive, default=0.4, metavar="SECONDS",
                        help="one detect call to a hosted model (default 0.4)")
    parser.add_argument("--detect-tps", type=positive, default=10.0, metavar="PER_SECOND",
                        help="a hosted model's rate cap, detect calls per second (default 10)")
    parser.add_argument("--price", type=positive, metavar="USD",
                        help="price per instance (inference-unit) hour of the hosted backend (default from "
                             "costmodel/prices.json: sagemaker 0.23, ml.m5.xlarge real-time inference on demand "
                             "in us-east-1; lookoutvision 4, its published price); pass your own "
                             "instance type's price in your region")
    parser.add_argument("--units", type=_count, default=1,
                        help="inference units (MinInferenceUnits) or instances (default 1)")
    parser.add_argument("--billing-seconds", type=positive, default=60.0,
                        help="billing granularity: each hosting is rounded up to this (default 60)")
    parser.add_argument("--seed", type=int, default=7, help="random seed for traces and start times (default 7)")


def hosted_name(args: argparse.Namespace) -> str:
    """The hosted backend the options describe: the one named, or the default one."""
    return args.backend if args.backend in HOSTED_BACKENDS else HOSTED_DEFAULT


def _start_minutes(args: argparse.Namespace) -> tuple[float, float]:
    low, high = args.start_minutes or PRESETS[hosted_name(args)].start_minutes
    return low, high


def _price(args: argparse.Namespace) -> float:
    return args.price if args.price is not None else price_book().usd(PRESETS[hosted_name(args)].hosting_price)


def service_from(args: argparse.Namespace) -> ModelService:
    """The hosted backend's start range and speed."""
    return ModelService(start_minutes=_start_minutes(args), detect_latency_seconds=args.detect_latency,
                        detect_tps=args.detect_tps, seed=args.seed)


def billing_from(args: argparse.Namespace) -> Billing:
    return Billing(price_per_unit_hour=_price(args), units=args.units,
                   granularity_seconds=args.billing_seconds)


def book_from(args: argparse.Namespace) -> PriceBook:
    """The price book, with --price in place of the hosted backend's price when given."""
    book = price_book()
    return with_price(book, PRESETS[hosted_name(args)].hosting_price, args.price) if args.price is not None else book


def images_from(args: argparse.Namespace) -> Images:
    return Images(image_bytes=int(args.image_kb * 1000), detector_ms=args.detector_ms, anomaly_rate=args.anomaly_rate)


def backend_summary(args: argparse.Namespace) -> str:
    """The hosted preset and the numbers in use, e.g. "backend sagemaker (start 5-10 min, 0.23 USD per
    instance-hour)"; a number the user gave names its option, so it is not read as the preset's."""
    low, high = _start_minutes(args)
    name = hosted_name(args)
    start = f"start {low:g}-{high:g} min" + (" from --start-minutes" if args.start_minutes else "")
    price = (f"{_price(args):g} USD per {PRESETS[name].unit_hour}"
             + (" from --price" if args.price is not None else ""))
    return f"backend {name} ({start}, {price})"


def images_summary(args: argparse.Namespace) -> str:
    images = images_from(args)
    return (f"images of {images.image_bytes / 1000:g} KB, {100 * images.anomaly_rate:g}% anomalous; the detector "
            f"takes {images.detector_ms:g} ms an image on one vCPU")
