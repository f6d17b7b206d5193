"""batchsight fit and batchsight evaluate: make a model file, and measure it.

    batchsight fit --normal DIR [--anomalous DIR] --output MODEL.npz
    batchsight evaluate --model MODEL.npz --test DIR      (DIR holds normal/ and anomaly/)

fit uses the PatchCore-style method (ONNX features, onnxruntime) unless --method aligned
(numpy only); without --anomalous the threshold comes from held-out normal images alone.
A wrong argument, folder, image or model file is one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import time

from batchsight_detector import DetectorModel, arguments, fit
from batchsight_detector.arguments import UsageError
from batchsight_detector.evaluation import evaluate
from batchsight_detector.features import UnreadableImage
from batchsight_detector.patchcore import TRANSFORMS, PatchMemory


def _fit(args: argparse.Namespace) -> int:
    if args.method == "aligned" and args.augment != "auto":
        raise UsageError("--augment applies to --method patchcore only; leave it out with --method aligned")
    output = arguments.output_file("--output", args.output)
    files = {"normal": arguments.normal_images(args.normal)}
    if args.anomalous:
        files["anomalous"] = arguments.images("--anomalous", args.anomalous, what="pictures of defective parts")
    normal = [p.read_bytes() for p in files["normal"]]
    anomalous = [p.read_bytes() for p in files["anomalous"]] if args.anomalous else None
    started = time.perf_counter()
    try:
        model = fit(normal, anomalous_images=anomalous, working_size=args.working_size,
                    method=args.method, augment=args.augment)
    except UnreadableImage as exc:   # the header was fine, the rest of the file is not
        raise UsageError(f"{files[exc.kind][exc.index]}: {exc.reason}; {arguments.IMAGE_ADVICE}") from exc
    try:
        model.save(output)
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write it ({exc.strerror or exc}); "
                         "give a file in a folder you can write to") from exc
    extra = ""
    if isinstance(model.bank, PatchMemory):   # method "patchcore"
        extra = (f"; {len(model.bank.patches)} memory patches, input {model.bank.size[0]}x"
                 f"{model.bank.size[1]}, augmentation {','.join(model.augmentation) or 'none'}")
    print(f"fitted {model.method} on {len(normal)} normal images"
          + (f", threshold calibrated on {len(anomalous)} anomalous ones" if anomalous else "")
          + f" in {time.perf_counter() - started:.1f} s; threshold {model.threshold:.4f}{extra}; "
          f"wrote {output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    test = arguments.labelled_folder(args.test)   # first: it needs no model loaded
    model_path = arguments.model_file("--model", args.model)
    try:
        model = DetectorModel.load(model_path)
    except ValueError as exc:   # model_file's message names the file and says what a model is
        raise UsageError(str(exc)) from exc
    try:
        print("\n".join(evaluate(model, test).lines()))
    except UnreadableImage as exc:
        raise UsageError(f"{exc}; {arguments.IMAGE_ADVICE}") from exc
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchsight", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fitting = commands.add_parser("fit", help="fit a model on normal images",
                                  description="Fit a model on pictures of good parts and write it to one .npz file.")
    fitting.add_argument("--normal", required=True, metavar="DIR",
                         help="folder of normal images (.jpg, .jpeg, .png; at least 3; required)")
    fitting.add_argument("--anomalous", metavar="DIR",
                         help="folder of anomalous images, used only to calibrate the threshold "
                              "(default: none; the threshold comes from held-out normal images)")
    fitting.add_argument("--output", required=True, metavar="MODEL.npz", help="model file to write (required)")
    fitting.add_argument("--method", choices=["patchcore", "aligned"], default="patchcore",
                         help="patchcore: CNN features + memory bank; aligned: numpy only (default patchcore)")
    fitting.add_argument("--working-size", type=arguments.working_size, default=None, metavar="PX",
                         help=f"px the model works at, {arguments.SIZES[0]} to {arguments.SIZES[1]} "
                              "(default: aligned 128; patchcore, the network input's long side, from the "
                              "image size)")
    fitting.add_argument("--augment", type=arguments.augment, default="auto", metavar="auto|none|NAMES",
                         help="patchcore only: auto (the flips/rotations under which the normal images look "
                              f"normal), none, or names from {','.join(TRANSFORMS)} (default auto)")
    evaluating = commands.add_parser("evaluate", help="measure a model on a labelled folder",
                                     description="AUROC, precision/recall/F1 and latency of a model file.")
    evaluating.add_argument("--model", required=True, metavar="MODEL.npz",
                            help="model file written by batchsight fit (required)")
    evaluating.add_argument("--test", required=True, metavar="DIR",
                            help="folder with normal/ and anomaly/ subfolders of images (required)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _fit(args) if args.command == "fit" else _evaluate(args)
    except (UsageError, ValueError) as exc:   # ValueError: what fit() refuses that the checks let by
        print(f"batchsight {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
