"""batchsight dataset build: one labelled dataset in S3 from folders, file names and operator feedback.

    batchsight dataset build --bucket MODEL_BUCKET --name castings \\
        --folder ../shared/data/casting/train \\
        --files ../shared/data/casting/stream/images --normal-pattern 'cast_ok_*' --anomaly-pattern 'cast_def_*' \\
        --feedback FINAL_BUCKET --site plant1 --line line3

writes s3://MODEL_BUCKET/datasets/castings/manifest.jsonl (a Ground Truth / Lookout for Vision
manifest, one line per image, deduplicated by the SHA-256 of the bytes, the latest label
winning) and uploads the local images beside it; `batchsight model fit --dataset` reads it.
"""
from __future__ import annotations

import argparse
import re

from batchsight_tools.dataset.build import Sources, build
from batchsight_tools.models import arguments
from batchsight_tools.models.arguments import Clients, UsageError

PROG = "batchsight dataset"
SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")   # a site or line id, as in the S3 keys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    building = commands.add_parser("build", help="assemble a dataset and write its manifest to S3",
                                   description="Assemble one dataset from the sources given and write its "
                                               "manifest to s3://BUCKET/datasets/NAME/manifest.jsonl.")
    building.add_argument("--bucket", required=True, type=arguments.bucket,
                          help="the model bucket, the stack output ModelBucketName (required)")
    building.add_argument("--name", required=True, type=_name,
                          help="the dataset's name: its prefix is datasets/NAME/ (required)")
    building.add_argument("--folder", action="append", default=[], metavar="DIR",
                          help="a folder with normal/ and anomaly/ subfolders of images; repeatable (default: none)")
    building.add_argument("--files", action="append", default=[], metavar="DIR",
                          help="a folder of images labelled by their file names; repeatable (default: none)")
    building.add_argument("--normal-pattern", metavar="GLOB",
                          help="with --files: names of normal images, e.g. 'cast_ok_*' (default: none)")
    building.add_argument("--anomaly-pattern", metavar="GLOB",
                          help="with --files: names of anomalous images, e.g. 'cast_def_*' (default: none)")
    building.add_argument("--feedback", type=arguments.bucket, metavar="FINAL_BUCKET",
                          help="the final bucket (stack output FinalBucketName): add the operators' answers "
                               "to alerts, with their images (default: none)")
    building.add_argument("--site", type=_segment,
                          help="with --feedback: the site's answers (default: none; required with --feedback)")
    building.add_argument("--line", type=_segment, help="with --feedback: only this line (default: every line)")
    arguments.add_aws(building)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return arguments.run(f"{PROG} {args.command}", lambda: _build(args))


def _build(args: argparse.Namespace) -> int:
    if not (args.folder or args.files or args.feedback):
        raise UsageError("give at least one source: --folder DIR, --files DIR (with --normal-pattern/"
                         "--anomaly-pattern) or --feedback FINAL_BUCKET --site SITE")
    if (args.normal_pattern or args.anomaly_pattern) and not args.files:
        raise UsageError("--normal-pattern and --anomaly-pattern go with --files DIR: give the folder they apply to")
    if args.feedback and not args.site:
        raise UsageError("--feedback goes with --site SITE (and optionally --line LINE): give the site")
    if (args.site or args.line) and not args.feedback:
        raise UsageError("--site and --line select operator feedback: give --feedback FINAL_BUCKET too")
    wanted = Sources(folders=args.folder, files=args.files, normal_pattern=args.normal_pattern,
                     anomaly_pattern=args.anomaly_pattern, feedback_bucket=args.feedback, site=args.site,
                     line=args.line)
    built = build(Clients(args).s3, args.bucket, args.name, wanted)
    print(f"dataset {args.name}: " + "\n".join(built.lines()))
    return 0


def _name(text: str) -> str:
    if not arguments.NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a dataset name: 1 to 64 letters, digits, '.', '_' and "
                                         "'-', starting with a letter or digit")
    return text


def _segment(text: str) -> str:
    if not SEGMENT.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: ids are letters, digits, '.', '_' and '-'")
    return text


if __name__ == "__main__":
    raise SystemExit(main())
