"""Fixtures and helpers of the model and dataset tests: moto over HTTP, labelled images, fitted models.

A test module takes the fixtures it needs by name (``aws = models_support.aws``): pytest finds
fixtures among a module's attributes, and no conftest in tests/tools is needed.

- ``moto_endpoint``: one ThreadedMotoServer on 127.0.0.1 and a free port, per test module;
- ``aws``: fake credentials for this test, a fresh versioned model bucket, an S3 client, and the
  ``--endpoint-url``/``--region`` arguments the commands take;
- ``labelled``: a small folder with normal/ and anomaly/ of synthetic parts (no ../shared needed),
  whose held-out split holds both classes; ``fitted``: two aligned models fitted on it.
"""
from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from batchsight_tools.dataset.manifest import sha256
from batchsight_tools.dataset.split import held_out
from tests.support import SHARED, moto_server

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
               "AWS_REGION": REGION}
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
CASTING = SHARED / "data" / "casting"
_counter = itertools.count()

# The manifest line batchsight writes (dataset/manifest.py), as the JSON Schema proposed for contracts/.
MANIFEST_LINE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://batchsight.example/schemas/dataset_manifest_line.schema.json",
    "title": "Dataset manifest line (datasets/{name}/manifest.jsonl in the model bucket, one per image)",
    "type": "object",
    "required": ["source-ref", "anomaly-label", "anomaly-label-metadata"],
    "additionalProperties": False,
    "properties": {
        "source-ref": {"type": "string", "pattern": "^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+$"},
        "anomaly-label": {"enum": [0, 1]},
        "anomaly-label-metadata": {
            "type": "object",
            "required": ["class-name", "confidence", "human-annotated", "creation-date", "type", "job-name",
                         "image-id", "source", "origin"],
            "properties": {
                "class-name": {"enum": ["normal", "anomaly"]},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "human-annotated": {"enum": ["yes", "no"]},
                "creation-date": {"type": "string", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$"},
                "type": {"const": "groundtruth/image-classification"},
                "job-name": {"type": "string", "minLength": 1},
                "image-id": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "source": {"enum": ["folder", "file-name", "feedback", "manifest"]},
                "origin": {"type": "string"},
                "operator": {"type": "string"},
                "operator-label": {"type": "string"},
            },
            "additionalProperties": True,
        },
    },
    "allOf": [
        {"if": {"properties": {"anomaly-label": {"const": 0}}},
         "then": {"properties": {"anomaly-label-metadata": {"properties": {"class-name": {"const": "normal"}}}}}},
        {"if": {"properties": {"anomaly-label": {"const": 1}}},
         "then": {"properties": {"anomaly-label-metadata": {"properties": {"class-name": {"const": "anomaly"}}}}}},
    ],
}


@dataclass
class Aws:
    endpoint: str
    s3: Any
    bucket: str

    @property
    def args(self) -> list[str]:
        return ["--endpoint-url", self.endpoint, "--region", REGION]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)

    def new_bucket(self, prefix: str) -> str:
        name = unique(prefix)
        self.s3.create_bucket(Bucket=name)
        self.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def keys(self, prefix: str = "", bucket: str | None = None) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket or self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{id(_counter) % 10_000}"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Aws:
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name=REGION)
    aws = Aws(moto_endpoint, s3, "")
    aws.bucket = aws.new_bucket("models")
    return aws


def synthetic_folder(root: Path, *, count: int = 40, seed: int = 7) -> Path:
    """normal/ and anomaly/ of synthetic parts whose held-out split holds both classes."""
    from batchsight_tools.synth import generate

    frames = generate(root / "frames", count=count, anomaly_rate=0.4, size=96, seed=seed)
    for frame in frames:
        target = root / "set" / frame.label / frame.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.path.rename(target)
    held = {kind: any(held_out(sha256(p.read_bytes())) for p in (root / "set" / kind).iterdir())
            for kind in ("normal", "anomaly")}
    assert all(held.values()), f"choose another seed: the held-out split lacks a class ({held})"
    return root / "set"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_folder(tmp_path_factory.mktemp("labelled"))


@dataclass(frozen=True)
class Fitted:
    good: Path       # aligned, the defaults at 64 px
    poor: Path       # aligned at 16 px, fitted on three images: worse on the same held-out images


@pytest.fixture(scope="module")
def fitted(labelled: Path, tmp_path_factory: pytest.TempPathFactory) -> Fitted:
    from batchsight_detector import fit
    from batchsight_tools.dataset.loading import load

    folder = tmp_path_factory.mktemp("fitted")
    dataset = load(str(labelled), lambda: None)
    normal = [image.data for image in dataset.training() if not image.anomalous]
    anomalous = [image.data for image in dataset.training() if image.anomalous]
    fit(normal, anomalous_images=anomalous, working_size=64).save(folder / "good.npz")
    fit(normal[:3], working_size=16).save(folder / "poor.npz")
    return Fitted(folder / "good.npz", folder / "poor.npz")


class FailingS3:
    """An S3 client that raises on one call (by operation and key), to fail a command midway."""

    def __init__(self, s3: Any, operation: str, key_part: str,
                 error: type[BaseException] = ConnectionError) -> None:
        self._s3, self.operation, self.key_part, self.error = s3, operation, key_part, error
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        call = getattr(self._s3, name)
        if name != self.operation:
            return call

        def failing(**kwargs: Any) -> Any:
            if not self.failed and self.key_part in str(kwargs.get("Key", "")):
                self.failed = True
                raise self.error(f"injected failure in {name} {kwargs.get('Key')}")
            return call(**kwargs)
        return failing
