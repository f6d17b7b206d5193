"""Reading the final bucket: the result documents a selection asks for, and their images.

A report may cover thousands of documents, each one small GetObject: they are fetched on a
thread pool, with a connection pool as large, so the wait is for S3 and not for one call
after another.
"""
from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from batchsight_tools.report.images import thumbnail
from batchsight_tools.report.selection import Selection

FETCH_WORKERS = 8


@dataclass
class Entry:
    """One result document, and the thumbnail the report shows for it (or why there is none)."""

    key: str
    document: dict[str, Any]
    thumbnail: str | None = None  # data URI
    width: int = 0
    height: int = 0
    missing: str = ""

    @property
    def anomalous(self) -> bool:
        return bool(self.document.get("result", {}).get("IsAnomalous"))

    @property
    def confidence(self) -> float | None:
        value = self.document.get("result", {}).get("Confidence")
        return float(value) if isinstance(value, (int, float)) else None


def s3_client(endpoint_url: str | None, region: str | None) -> Any:
    """An S3 client with standard retries and a connection per fetching thread (and spare)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5},
                    max_pool_connections=FETCH_WORKERS * 2)
    return boto3.client("s3", endpoint_url=endpoint_url or None,
                        region_name=region or os.environ.get("AWS_REGION")
                        or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1", config=config)


def find_results(s3: Any, selection: Selection) -> list[Entry]:
    """The result documents the selection asks for, read in parallel."""
    keys = [item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=selection.bucket,
                                                                     Prefix=selection.prefix())
            for item in page.get("Contents", []) if selection.key_matches(item["Key"])]

    def load(key: str) -> Entry | None:
        try:
            document = json.loads(s3.get_object(Bucket=selection.bucket, Key=key)["Body"].read())
        except (ValueError, UnicodeDecodeError):
            print(f"skipped {key}: not a JSON result document", file=sys.stderr)
            return None
        if not isinstance(document, dict) or not selection.document_matches(document):
            return None
        return Entry(key=key, document=document)

    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        return [entry for entry in pool.map(load, keys) if entry is not None]


def attach_thumbnails(s3: Any, bucket: str, entries: list[Entry], size: int) -> None:
    """Downscaled JPEG thumbnails (mask overlaid) as data URIs, fetched in parallel.

    An image that is gone or does not decode leaves a note in its entry instead: one bad
    image must not lose the report.
    """

    def one(entry: Entry) -> None:
        image_key = str(entry.document.get("image", {}).get("key", ""))
        data = _get(s3, bucket, image_key) if image_key else None
        if data is None:
            entry.missing = f"image {image_key or '(no key)'} not found in the bucket"
            return
        mask_key = entry.document.get("mask", {}).get("key") if isinstance(entry.document.get("mask"), dict) else None
        mask = _get(s3, bucket, str(mask_key)) if mask_key else None
        try:
            entry.thumbnail, entry.width, entry.height = thumbnail(data, mask, size)
        except Exception as exc:  # noqa: BLE001 - one bad image must not lose the report
            entry.missing = f"image {image_key} could not be decoded ({type(exc).__name__})"

    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        list(pool.map(one, entries))


def _get(s3: Any, bucket: str, key: str) -> bytes | None:
    """The object's bytes, or None when it is missing or we may not read it."""
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
            return None
        raise
