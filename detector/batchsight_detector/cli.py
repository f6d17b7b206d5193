"""``batchsight fit`` and ``batchsight evaluate``: make a model file, and measure it.

    batchsight fit --normal DIR [--anomalous DIR] --output MODEL.npz
    batchsight evaluate --model MODEL.npz --test DIR      (DIR holds normal/ and anomaly/)

`fit` uses the PatchCore-style method (ONNX features, onnxruntime) unless `--method aligned`
(numpy only); without --anomalous the threshold comes from held-out normal images alone.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from batchsight_detector import DetectorModel, fit
from batchsight_detector.evaluation import evaluate, read_images
from batchsight_detector.patchcore import PatchMemory


def _fit(args: argparse.Namespace) -> int:
    normal = read_images(Path(args.normal))
    anomalous = read_images(Path(args.anomalous)) if args.anomalous else None
    started = time.perf_counter()
    augment = args.augment if args.augment in ("auto", "none") else args.augment.split(",")
    model = fit(normal, anomalous_images=anomalous, working_size=args.working_size,
                method=args.method, augment=augment)
    model.save(args.output)
    extra = ""
    if isinstance(model.bank, PatchMemory):   # method "patchcore"
        extra = (f"; {len(model.bank.patches)} memory patches, input {model.bank.size[0]}x"
                 f"{model.bank.size[1]}, augmentation {','.join(model.augmentation) or 'none'}")
    print(f"fitted {model.method} on {len(normal)} normal images"
          + (f", threshold calibrated on {len(anomalous)} anomalous ones" if anomalous else "")
          + f" in {time.perf_counter() - started:.1f} s; threshold {model.threshold:.4f}{extra}; "
          f"wrote {args.output}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    model = DetectorModel.load(args.model)
    print("\n".join(evaluate(model, Path(args.test)).lines()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batchsight", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    fitting = commands.add_parser("fit", help="fit a model on normal images")
    fitting.add_argument("--normal", required=True, help="folder of normal images")
    fitting.add_argument("--anomalous", help="folder of anomalous images (only calibrate the threshold)")
    fitting.add_argument("--output", required=True, help="model file to write (.npz)")
    fitting.add_argument("--method", choices=["patchcore", "aligned"], default="patchcore",
                         help="patchcore: CNN features + memory bank (default); aligned: numpy only")
    fitting.add_argument("--working-size", type=int, default=None,
                         help="px the model works at (aligned: side, default 128; patchcore: "
                              "network input's long side, default from the image size)")
    fitting.add_argument("--augment", default="auto",
                         help="patchcore: auto (default: flips/rotations under which the normal "
                              "images look normal), none, or names, e.g. flip_h,rot180")
    evaluating = commands.add_parser("evaluate", help="measure a model on a labelled folder")
    evaluating.add_argument("--model", required=True)
    evaluating.add_argument("--test", required=True, help="folder with normal/ and anomaly/")
    args = parser.parse_args(argv)
    try:
        return _fit(args) if args.command == "fit" else _evaluate(args)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
