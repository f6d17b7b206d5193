"""What `batchsight model` and `batchsight dataset` share on the command line: options, checks, errors.

Why a module of its own: every subcommand names the model bucket the same way, reaches S3
the same way (a client made only when a command needs one, so `model fit` on a local folder
works with no AWS configuration), and turns every failure into the one line a person reads.
Two kinds of failure: ``UsageError`` (the detector's own, so its checks of folders and images
are ours too: a wrong argument, a dataset that cannot be fitted, an unknown version: exit 2)
and ``Failure`` (the bucket holds something damaged, S3 refused, the gate refused: exit 1).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from functools import cached_property
from typing import Any

from batchsight_detector.arguments import UsageError as UsageError  # re-exported: one class for exit 2
from batchsight_tools.aws_arguments import bucket_named, endpoint, region

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")   # model_package.schema.json "name"
VERSION = re.compile(r"^[1-9][0-9]{0,8}$")                 # model_package.schema.json "version"
DEFAULT_MODEL = "inspection"   # cloud/template.yaml parameter ModelName's default
USAGE, FAILURE = 2, 1


class Failure(Exception):
    """Something the user did not cause (a damaged package, an S3 error) or a refusal: one line, exit 1."""


def model_name(text: str) -> str:
    if not NAME.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a model name: 1 to 64 letters, digits, '.', '_' "
                                         "and '-', starting with a letter or digit (the stack parameter ModelName)")
    return text


def version(text: str) -> str:
    if not VERSION.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a version: versions are 1, 2, 3, ... "
                                         "(`batchsight model list` shows them)")
    return text


bucket = bucket_named("ModelBucketName")


def fraction(text: str) -> float:
    """--margin: a number from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}")
    return value


def add_aws(parser: argparse.ArgumentParser) -> None:
    """--endpoint-url and --region, as `batchsight report` has them."""
    parser.add_argument("--endpoint-url", type=endpoint,
                        help="AWS endpoint, only for a local emulation such as moto (default: AWS's)")
    parser.add_argument("--region", type=region,
                        help="AWS region (default: AWS_REGION or AWS_DEFAULT_REGION, else us-east-1)")


def add_registry(parser: argparse.ArgumentParser) -> None:
    """--bucket and --name: where a model's versions are (models/{name}/ in the model bucket)."""
    parser.add_argument("--bucket", required=True, type=bucket,
                        help="the model bucket, the stack output ModelBucketName (required)")
    parser.add_argument("--name", type=model_name, default=DEFAULT_MODEL,
                        help=f"the model, the stack parameter ModelName (default {DEFAULT_MODEL})")
    add_aws(parser)


class Clients:
    """boto3 clients for the arguments' endpoint and region, each made on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.endpoint_url: str | None = getattr(args, "endpoint_url", None)
        self.region: str = (getattr(args, "region", None) or os.environ.get("AWS_REGION")
                            or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
        self._made: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._made:
            import boto3
            from botocore.config import Config

            config = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=16)
            self._made[service] = boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                                               config=config)
        return self._made[service]

    @cached_property
    def s3(self) -> Any:
        return self.client("s3")


def run(prog: str, command: Callable[[], int]) -> int:
    """Run a subcommand; every failure is one line on stderr with the exit code of its kind."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return command()
    except UsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return USAGE
    except Failure as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return FAILURE
    except (BotoCoreError, ClientError) as exc:
        print(f"{prog}: AWS refused: {one_line(exc)}{advice(exc)}", file=sys.stderr)
        return FAILURE
    except OSError as exc:   # a local file that cannot be read or written
        print(f"{prog}: {exc.filename or 'a local file'}: {exc.strerror or exc}", file=sys.stderr)
        return FAILURE


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("" for anything else)."""
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def advice(exc: BaseException) -> str:
    """What to do about the AWS errors a person meets first."""
    name, code = type(exc).__name__, error_code(exc)
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "; configure AWS credentials (aws configure, AWS_PROFILE or AWS_ACCESS_KEY_ID)"
    if name == "EndpointConnectionError":
        return "; check --endpoint-url and the network"
    if code == "NoSuchBucket":
        return "; check the bucket names (--bucket is the stack output ModelBucketName) and --region"
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return "; the credentials need s3:ListBucket, s3:GetObject and s3:PutObject on the bucket"
    return ""
