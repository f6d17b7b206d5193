"""Small S3 object helpers the dataset and model commands share: URIs, existence, a bounded pool.

Why a module of its own: reading a dataset means thousands of small GETs and HEADs, which wait
on the network, not the CPU; one bounded pool (``WORKERS``) does them for every caller, and one
place says what "not there" looks like in botocore's errors.
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from batchsight_tools.models.arguments import error_code

WORKERS = 8
MISSING = ("404", "NoSuchKey", "NotFound")
T = TypeVar("T")
R = TypeVar("R")


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of s3://bucket/key."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def is_missing(exc: BaseException) -> bool:
    """Whether a botocore error says the object (or version) is not there."""
    return error_code(exc) in MISSING


def exists(s3: Any, uri: str) -> bool:
    from botocore.exceptions import ClientError

    bucket, key = split_uri(uri)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing(exc):
            return False
        raise
    return True


def parallel(work: Callable[[T], R], items: list[T]) -> list[R]:
    """``work`` over ``items`` on the bounded pool, results in order; the first error is raised."""
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(WORKERS, len(items))) as pool:
        return list(pool.map(work, items))
