"""The demo's command line: every option with its default, and every wrong value as one line.

Why a module of its own: the checks that need no file system are argparse types (argparse
prints the usage and the one line, exit 2); the checks of folders and files run right after
parsing, before the demo creates anything, so a wrong argument leaves nothing behind.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from batchsight_tools.demo.frames import ImageFolder, UsageProblem, read_folder
from batchsight_tools.demo.training import check_photographs
from batchsight_tools.demo.workdir import MARKER
from batchsight_tools.localcloud.hosting import BACKENDS

# The detection floor: the demo fails below it. PatchCore as `batchsight fit` fits it measured
# recall 0.90 / precision 0.79 on ../shared/data/casting and 0.95 / 0.83 on circuitboard (its
# threshold from train/anomaly, see frames.fit_model), the aligned method 1.00 / 1.00 on the
# generated parts; the floor leaves 0.14 or more below each.
MIN_RECALL = 0.75
MIN_PRECISION = 0.65
SIZES = (64, 2048)   # generated parts: the gateway refuses sides under 64 px (ingest.min_side)


def _number(kind: Callable[[str], float], low: float, high: float | None, what: str) -> Callable[[str], float]:
    def check(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            span = f"from {low:g} to {high:g}" if high is not None else f"of at least {low:g}"
            raise argparse.ArgumentTypeError(f"give {what} {span}, not {text!r}")
        return value
    check.__name__ = what  # argparse names the type in some messages
    return check


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchsight demo",
        description="Run the whole product on this machine, no AWS account: fit the detector, start the "
                    "local cloud (moto with the stack of cloud/template.yaml) and an MQTT broker, run the edge "
                    "program on a drop folder, play a camera into it, and print a markdown summary. It exits 0 "
                    "only if every image got exactly one result, every anomalous result one alert, the model "
                    "was not left hosted, and detection on the labelled images reached the floor "
                    f"(recall {MIN_RECALL:.2f}, precision {MIN_PRECISION:.2f} by default). Nothing is left in "
                    "the temp folder unless --keep names a folder; SIGTERM or Ctrl-C ends every process it "
                    "started.")
    whole = _number(int, 1, None, "a whole number")
    parser.add_argument("--count", type=whole, default=60, metavar="N",
                        help="images to drop; with --images at most the test images, in an order shuffled by "
                             "--seed (default %(default)s)")
    parser.add_argument("--images", metavar="DIR", type=Path,
                        help="real photographs instead of generated parts: a folder with train/normal (at least 3, "
                             "fitted on), test/normal and test/anomaly (dropped), and optionally train/anomaly "
                             "(sets the threshold, as 'batchsight fit --anomalous' does), e.g. "
                             "../shared/data/casting (default: generated parts)")
    parser.add_argument("--method", choices=("auto", "patchcore", "aligned"), default="auto",
                        help="the detector, fitted as 'batchsight fit --method' does; auto: patchcore (what "
                             "'batchsight fit' picks) for --images, aligned for the generated parts, where it is "
                             "exact and fits in about a second (default %(default)s)")
    parser.add_argument("--train", type=_number(int, 3, None, "a whole number"), default=40, metavar="N",
                        help="generated normal parts to fit on (generated parts only; default %(default)s)")
    parser.add_argument("--size", type=_number(int, SIZES[0], SIZES[1], "a side in px"), default=256, metavar="PX",
                        help="side of the generated parts in px (generated parts only; default %(default)s)")
    parser.add_argument("--anomaly-rate", type=_number(float, 0.0, 1.0, "a share"), default=0.25, metavar="SHARE",
                        help="share of generated parts with a defect (generated parts only; default %(default)s)")
    parser.add_argument("--seed", type=_number(int, 0, None, "a whole number"), default=7,
                        help="seed of the generated parts and of the order of --images (default %(default)s)")
    parser.add_argument("--min-recall", type=_number(float, 0.0, 1.0, "a share"), default=MIN_RECALL, metavar="R",
                        help="floor: share of the defective parts that must raise an alert; measured 0.90 on "
                             "../shared/data/casting, 0.95 on circuitboard, 1.00 on the generated parts "
                             "(default %(default)s)")
    parser.add_argument("--min-precision", type=_number(float, 0.0, 1.0, "a share"), default=MIN_PRECISION,
                        metavar="P", help="floor: share of the alerts that must be defective parts; measured 0.79 "
                                          "on casting, 0.83 on circuitboard, 1.00 on the generated parts "
                                          "(default %(default)s)")
    parser.add_argument("--gap", type=_number(float, 0.0, 60.0, "seconds"), default=0.1, metavar="SECONDS",
                        help="seconds between camera frames (default %(default)s)")
    parser.add_argument("--model-startup", type=_number(float, 0.0, 600.0, "seconds"), default=3.0,
                        metavar="SECONDS", help="seconds the local model takes to become hosted "
                                                "(default %(default)s)")
    parser.add_argument("--backend", choices=BACKENDS, default=None,
                        help="model backend the pipeline drives: lambda, the template's default (the drain function "
                             "runs the detector from the version that 'batchsight model publish' and 'model deploy' "
                             "put in the model bucket), local (the tools' stand-in for a hosted model), sagemaker "
                             "(moto's control plane plus a local InvokeEndpoint server) or sagemaker-serverless "
                             "(the same, a serverless endpoint kept between batches) (default: lambda; local for "
                             "--images without train/anomaly, since publishing measures a version on defective parts)")
    parser.add_argument("--model-loop", action="store_true",
                        help="after the first stream an operator answers two alerts over MQTT (one defect confirmed, "
                             "one false alarm), 'batchsight dataset build' adds the answers to the dataset, "
                             "'batchsight model fit', 'publish' (gated against version 1) and 'deploy' make version 2, "
                             "and a second stream is judged by the current version; lambda backend, cloud inference "
                             "(default: off)")
    parser.add_argument("--inference", choices=("cloud", "edge", "edge-first"), default="cloud",
                        help="where images are judged: the cloud batch, the gateway's local detector, or the "
                             "gateway first with a 20%% audit sample and the uncertain band checked by the cloud "
                             "(default %(default)s)")
    parser.add_argument("--opcua", action="store_true",
                        help="the gateway also runs its OPC UA server (docs/plant-floor.md) on a free port, with a "
                             "login and certificates made for the run; the demo prints the endpoint for your own "
                             "client and reads the PLC handshake at the end (default: off)")
    parser.add_argument("--keep", "--workdir", dest="keep", metavar="DIR", type=Path,
                        help="keep the work folder (model, logs, edge journal) in DIR, a new or empty folder or "
                             "an earlier demo's (default: a temp folder, removed at the end)")
    parser.add_argument("--report", metavar="FILE", type=Path,
                        help="write the HTML report of the run (batchsight report against the local cloud's "
                             "final bucket) to FILE (default: none)")
    parser.add_argument("--timeout", type=_number(float, 1.0, None, "seconds"), default=150.0, metavar="SECONDS",
                        help="seconds to wait for every result once the detector is fitted (default %(default)s)")
    return parser


def parse(argv: list[str]) -> tuple[argparse.Namespace, ImageFolder | None]:
    """The arguments, and the --images folder read; a wrong one exits 2 with its one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    folder = None
    try:
        if args.images is not None:
            folder = read_folder(args.images)
        args.backend_note = ""
        if args.backend is None:
            args.backend, args.backend_note = default_backend(folder, model_loop=args.model_loop)
        _check_loop(args)
        if folder is not None and args.backend == "lambda":
            check_photographs(folder)
        _check_keep(args.keep)
        _check_report(args.report)
    except UsageProblem as exc:
        parser.error(str(exc))
    return args, folder


def default_backend(folder: ImageFolder | None, *, model_loop: bool) -> tuple[str, str]:
    """The template's default, ``lambda``, which publishes a measured version; photographs with no
    defective parts in train/ cannot be measured, so they run on ``local``, and the note says why."""
    if folder is not None and not folder.anomalous and not model_loop:
        return "local", (f"backend local, not the template's lambda: {folder.root} has no train/anomaly, and "
                         "`batchsight model publish` measures a version on defective parts before the lambda "
                         "backend may use it")
    return "lambda", ""


def _check_loop(args: argparse.Namespace) -> None:
    if not args.model_loop:
        return
    if args.backend != "lambda":
        raise UsageProblem(f"--model-loop goes with --backend lambda (the default), not {args.backend}: the loop makes "
                           "versions in the model bucket, which only the lambda backend reads")
    if args.inference != "cloud":
        raise UsageProblem(f"--model-loop goes with --inference cloud, not {args.inference}: gateways take a new "
                           "version through a Greengrass deployment ('batchsight model deploy --gateways'), which "
                           "the demo cannot make")


def _check_keep(keep: Path | None) -> None:
    if keep is None:
        return
    if keep.exists() and not keep.is_dir():
        raise UsageProblem(f"--keep {keep} is a file; name a new or empty folder")
    if keep.is_dir() and any(keep.iterdir()) and not (keep / MARKER).exists():
        raise UsageProblem(f"--keep {keep} holds other files; name a new or empty folder (the demo clears "
                           "only a folder it made itself)")
    if not keep.exists() and not keep.parent.is_dir():
        raise UsageProblem(f"--keep {keep}: the folder {keep.parent} does not exist; create it first")


def _check_report(report: Path | None) -> None:
    if report is None:
        return
    if report.is_dir():
        raise UsageProblem(f"--report {report} is a folder; name the HTML file to write, e.g. {report / 'demo.html'}")
    if not report.parent.is_dir():
        raise UsageProblem(f"--report {report}: the folder {report.parent} does not exist; create it first")
