"""Model packages as `batchsight model publish` lays them out, for the gateway's tests: in a local
folder (a Greengrass artifact unpacked) or in a bucket (models/{name}/{version}/).

The documents are made by tests/cloud/model_packages.py, which checks each against its schema
in contracts/, so the gateway is tested on what the contract allows and nothing looser.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cloud.model_packages import index, package


def folder_package(folder: Path, name: str, version: str, model: Path, *, tamper: bool = False) -> Path:
    """``folder`` holding package.json and model.npz; ``tamper``: the file changed after publishing."""
    data = model.read_bytes()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "package.json").write_text(json.dumps(package(name, version, data)))
    (folder / "model.npz").write_bytes(_tampered(data) if tamper else data)
    return folder


def s3_package(s3: Any, bucket: str, name: str, version: str, model: Path, *, tamper: bool = False,
               published: tuple[str, ...] = ()) -> str:
    """One version's file and package.json, then the index listing ``published`` (and it) with it
    current; the ``inference.model`` that names it."""
    data = model.read_bytes()
    prefix = f"models/{name}/{version}/"
    s3.put_object(Bucket=bucket, Key=f"{prefix}model.npz", Body=_tampered(data) if tamper else data)
    s3.put_object(Bucket=bucket, Key=f"{prefix}package.json", Body=json.dumps(package(name, version, data)))
    versions = sorted({*published, version}, key=int)
    s3.put_object(Bucket=bucket, Key=f"models/{name}/index.json", Body=json.dumps(index(name, version, versions)))
    return f"s3://{bucket}/{prefix}"


def _tampered(data: bytes) -> bytes:
    """The same size, one byte different: only the checksum can tell."""
    return data[:-1] + bytes([data[-1] ^ 0xFF])
