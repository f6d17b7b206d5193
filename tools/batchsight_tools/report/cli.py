"""The command line of ``batchsight report``: arguments, checks, and what it prints.

Argument errors exit 2 (argparse); an S3 error (no bucket, no credentials, access denied)
prints what failed and exits 1 before anything is written.
"""
from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime
from pathlib import Path

from batchsight_tools.aws_arguments import bucket_named, endpoint, region
from batchsight_tools.number_arguments import whole_number
from batchsight_tools.report.results import s3_client
from batchsight_tools.report.selection import Selection
from batchsight_tools.report.times import parse_time
from batchsight_tools.report.write import Summary, write_report

SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchsight report",
        description="Write a self-contained HTML report (counts, anomaly rate, anomalous images with "
                    "their confidence and mask) from the result documents in the final bucket.")
    parser.add_argument("--bucket", required=True, type=bucket_named("FinalBucketName"),
                        help="the final bucket, the stack output FinalBucketName (required)")
    parser.add_argument("--site", type=_segment, help="only this site (default: all)")
    parser.add_argument("--line", type=_segment, help="only this line (default: all)")
    parser.add_argument("--device", type=_segment, help="only this device (default: all)")
    parser.add_argument("--batch", help="one batch, its id is the execution name (default: none; give "
                                        "--batch or --since)")
    parser.add_argument("--since", type=_iso, help="images captured at or after this time, ISO 8601, UTC if "
                                                   "no zone (default: none; give --batch or --since)")
    parser.add_argument("--until", type=_iso, help="images captured before this time (default: now)")
    parser.add_argument("--output", required=True, type=Path, help="the HTML file to write (required)")
    parser.add_argument("--endpoint-url", type=endpoint,
                        help="S3 endpoint, only for a local emulation (default: AWS's)")
    parser.add_argument("--region", type=region,
                        help="AWS region (default: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1)")
    parser.add_argument("--max-images", type=whole_number(0), default=500,
                        help="anomalous images shown, highest confidence first; counts include all (default 500)")
    parser.add_argument("--thumbnail-size", type=whole_number(32, 2048), default=320,
                        help="thumbnail side in px, 32 to 2048 (default 320)")
    return parser


def selection_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Selection:
    """The selection the arguments ask for; exits with a usage error when they contradict."""
    if args.batch is not None and (args.since or args.until):
        parser.error("give --batch or a time range (--since/--until), not both")
    if args.batch is None and args.since is None:
        parser.error("give --batch ID, or --since ISO [--until ISO]")
    if args.until is not None and args.since is not None and args.until <= args.since:
        parser.error("--until must be after --since")
    if args.output.is_dir():
        parser.error(f"--output {args.output} is a folder; give a file name such as {args.output / 'report.html'}")
    return Selection(bucket=args.bucket, site=args.site, line=args.line, device=args.device,
                     batch=args.batch, since=args.since, until=args.until)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    selection = selection_from(args, parser)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        summary = write_report(selection, args.output, s3=s3_client(args.endpoint_url, args.region),
                               max_images=args.max_images, thumbnail_size=args.thumbnail_size)
    except (BotoCoreError, ClientError) as exc:
        print(f"report failed reading s3://{selection.bucket}: {_one_line(exc)}{_advice(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"report failed writing {args.output}: {exc.strerror or exc}; give a file in a folder you can "
              "write to", file=sys.stderr)
        return 1
    _tell(args.output, summary)
    return 0


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _advice(exc: Exception) -> str:
    """What to do about the S3 errors a person meets first."""
    name = type(exc).__name__
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "; configure AWS credentials (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    if name == "EndpointConnectionError":
        return "; check --endpoint-url and the network"
    if code == "NoSuchBucket":
        return "; check --bucket (the stack output FinalBucketName) and --region"
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return "; the credentials need s3:ListBucket and s3:GetObject on the bucket"
    return ""


def _tell(output: Path, summary: Summary) -> None:
    """One line on stdout; what the reader should look into on stderr."""
    print(f"wrote {output}: {summary.images} images, {summary.anomalous} anomalous ({summary.rate:.1f} %), "
          f"{summary.shown} shown, {summary.bytes / 1024:.0f} KiB")
    if summary.without_image:
        print(f"  {summary.without_image} anomalous image(s) not found beside their result", file=sys.stderr)
    if not summary.images:
        print("  no result documents match this selection", file=sys.stderr)


def _iso(text: str) -> datetime:
    parsed = parse_time(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-23T08:00Z)")
    return parsed


def _segment(text: str) -> str:
    if not SEGMENT.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: ids are letters, digits, '.', '_' and '-'")
    return text
