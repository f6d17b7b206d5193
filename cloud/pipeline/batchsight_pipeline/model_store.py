"""Model packages in the model bucket, as the cloud's detector backend reads them.

A package is ``models/{name}/{version}/package.json`` (contracts/schemas/model_package.schema.json)
with the files it lists; ``models/{name}/index.json`` names the current version. The index is
read once per start (one GET), so a new version reaches the pipeline at its next start without
a ``sam deploy``; the files are fetched once per warm function into ``/tmp`` and their SHA-256
checked before use, so a damaged download or a package altered in the bucket is never judged
with.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from batchsight_pipeline.aws import client
from batchsight_pipeline.backends.responses import error_code

CACHE_DIR = Path(os.environ.get("MODEL_CACHE_DIR", "/tmp/batchsight-models"))
_fetch_lock = threading.Lock()
# Versions are immutable: once a file is verified, a warm function uses it without asking S3 again.
_verified: dict[tuple[str, str, str], Path] = {}


class ModelPackageError(RuntimeError):
    """The model package cannot be used (missing, not deployed, damaged): a deployment error."""


def index_key(name: str) -> str:
    return f"models/{name}/index.json"


def package_key(name: str, version: str) -> str:
    return f"models/{name}/{version}/package.json"


def current_version(bucket: str, name: str) -> str:
    """The version the index names as current."""
    index = _json(bucket, index_key(name), missing=f"model {name!r} has no index in s3://{bucket}: "
                  "publish and deploy a version with `batchsight model publish` and `model deploy`")
    version = index.get("current")
    if not version:
        raise ModelPackageError(f"model {name!r} has no current version: deploy one with "
                                "`batchsight model deploy`")
    return str(version)


def fetch(bucket: str, name: str, version: str) -> Path:
    """The package's model file on local disk, downloaded once and checked against its SHA-256."""
    known = _verified.get((bucket, name, version))
    if known is not None and known.is_file():
        return known
    package = _json(bucket, package_key(name, version),
                    missing=f"model {name!r} has no version {version} in s3://{bucket}")
    entry = package["files"]["model"]
    target = CACHE_DIR / name / version / entry["key"]
    with _fetch_lock:
        if not (target.is_file() and _sha256(target) == entry["sha256"]):
            _download(bucket, f"models/{name}/{version}/{entry['key']}", target)
            if _sha256(target) != entry["sha256"]:
                target.unlink()
                raise ModelPackageError(f"model {name!r} version {version}: {entry['key']} does not match the "
                                        "SHA-256 in its package.json; publish the version again")
        _verified[(bucket, name, version)] = target
    return target


def _json(bucket: str, key: str, *, missing: str) -> dict[str, Any]:
    try:
        body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if error_code(exc) in ("NoSuchKey", "404"):
            raise ModelPackageError(missing) from exc
        raise
    document: dict[str, Any] = json.loads(body)
    return document


def _download(bucket: str, key: str, target: Path) -> None:
    """Into a partial file renamed into place: a function frozen mid-download leaves no half model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    client("s3").download_file(bucket, key, str(partial))
    os.replace(partial, target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
