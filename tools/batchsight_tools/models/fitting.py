"""A detector fitted on a dataset's training split, the way `batchsight fit` fits one.

Why the same method and defaults as `batchsight fit` (patchcore, augmentation auto, the
working size from the images): a version published from a dataset must behave like the model a
person fitted by hand on the same folders. The difference is the split: the held-out images
(dataset.split) are never fitted on, so `model evaluate`, `publish` and the gate measure
on pictures the model has not seen. Anomalous training images only set the threshold, as
``--anomalous`` does.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass

from batchsight_detector import DetectorModel, arguments, fit
from batchsight_detector.features import UnreadableImage
from batchsight_detector.fitting import MIN_NORMAL_IMAGES
from batchsight_detector.patchcore import TRANSFORMS
from batchsight_tools.dataset.loading import Dataset, Image, describe
from batchsight_tools.dataset.split import HOLDOUT_PERCENT
from batchsight_tools.models.arguments import UsageError

METHODS = ("patchcore", "aligned")


@dataclass(frozen=True)
class Settings:
    method: str = "patchcore"
    working_size: int | None = None
    augment: str | list[str] = "auto"


def add_options(parser: argparse.ArgumentParser) -> None:
    """--method, --working-size, --augment: `batchsight fit`'s options, with its defaults."""
    parser.add_argument("--method", choices=METHODS, default="patchcore",
                        help="patchcore: CNN features + memory bank; aligned: numpy only (default patchcore)")
    parser.add_argument("--working-size", type=arguments.working_size, default=None, metavar="PX",
                        help=f"px the model works at, {arguments.SIZES[0]} to {arguments.SIZES[1]} (default: aligned "
                             "128; patchcore, the network input's long side, from the image size)")
    parser.add_argument("--augment", type=arguments.augment, default="auto", metavar="auto|none|NAMES",
                        help="patchcore only: auto (the flips/rotations under which the normal images look normal), "
                             f"none, or names from {','.join(TRANSFORMS)} (default auto)")


def settings_from(args: argparse.Namespace) -> Settings:
    if args.method == "aligned" and args.augment != "auto":
        raise UsageError("--augment applies to --method patchcore only; leave it out with --method aligned")
    return Settings(method=args.method, working_size=args.working_size, augment=args.augment)


def fit_on(dataset: Dataset, settings: Settings) -> tuple[DetectorModel, list[Image]]:
    """The model fitted on the training split, and that split."""
    training = dataset.training()
    normal = [image for image in training if not image.anomalous]
    anomalous = [image for image in training if image.anomalous]
    if len(normal) < MIN_NORMAL_IMAGES:
        raise UsageError(f"--dataset {dataset.location}: its training split ({100 - HOLDOUT_PERCENT} %: "
                         f"{describe(training)}) has fewer than {MIN_NORMAL_IMAGES} normal images to fit on; "
                         "add normal images")
    try:
        model = fit([image.data for image in normal], anomalous_images=[image.data for image in anomalous] or None,
                    working_size=settings.working_size, method=settings.method, augment=settings.augment)
    except UnreadableImage as exc:   # the header was fine, the rest of the file is not
        origin = (normal if exc.kind == "normal" else anomalous)[exc.index].origin
        raise UsageError(f"{origin}: {exc.reason}; remove it from the dataset or replace it with a readable "
                         "JPEG or PNG") from exc
    return model, training
