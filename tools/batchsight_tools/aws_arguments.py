"""Command-line checks for AWS names every tool takes: a bucket, an endpoint URL, a region.

One home for them, so `batchsight report`, `model` and `dataset` refuse the same mistakes
with the same words, before any call reaches AWS.
"""
from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from urllib.parse import urlsplit

BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


def bucket_named(output: str) -> Callable[[str], str]:
    """An argparse type for a bucket name; the error names the stack output that holds it."""
    def bucket(text: str) -> str:
        if not BUCKET.match(text):
            raise argparse.ArgumentTypeError(f"{text!r} is not an S3 bucket name (3 to 63 lower-case letters, "
                                             f"digits, '.' and '-'); give the stack output {output}")
        return text

    return bucket


def endpoint(text: str) -> str:
    try:
        url = urlsplit(text)
        usable = url.scheme in ("http", "https") and bool(url.hostname) and url.port != 0
    except ValueError:  # a port that is not a number, a broken IPv6 address
        usable = False
    if not usable:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL, e.g. http://127.0.0.1:5000")
    return text


def region(text: str) -> str:
    if not REGION.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an AWS region name, e.g. eu-west-1")
    return text
