"""Model packages written into a bucket as `batchsight model publish` lays them out, for the
tests of the cloud's readers (the ``lambda`` backend, ``batchsight_pipeline.model_store``).

Each document is checked against its schema in contracts/ before it is written, so these
tests read what the contract allows and nothing looser.
"""
from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema

from tests.support import load_schema

NOW = datetime(2026, 12, 4, tzinfo=UTC).isoformat().replace("+00:00", "Z")
METRICS = {"auroc": 0.97, "f1": 0.9, "precision": 0.9, "recall": 0.9,
           "confusion": {"tp": 9, "fp": 1, "tn": 9, "fn": 1}, "images": {"normal": 10, "anomaly": 10}}


def package(name: str, version: str, model: bytes) -> dict[str, Any]:
    document = {
        "v": 1, "name": name, "version": version, "created_at": NOW,
        "detector": {"version": "0.1.0", "method": "aligned"},
        "files": {"model": {"key": "model.npz", "sha256": hashlib.sha256(model).hexdigest(), "bytes": len(model)}},
        "threshold": 1.0, "metrics": METRICS,
        "dataset": {"manifest": "s3://datasets/manifest.jsonl", "sha256": "0" * 64},
    }
    jsonschema.validate(document, load_schema("model_package"))
    return document


def index(name: str, current: str | None, versions: list[str]) -> dict[str, Any]:
    document = {
        "v": 1, "name": name, "current": current, "candidate": None,
        "history": [current] if current else [],
        "versions": {v: {"created_at": NOW, "package": f"models/{name}/{v}/package.json",
                         "auroc": METRICS["auroc"], "f1": METRICS["f1"]} for v in versions},
        "updated_at": NOW,
    }
    jsonschema.validate(document, load_schema("model_index"))
    return document


def write(s3: Any, bucket: str, name: str, version: str, model_path: Path, *, current: bool = True) -> None:
    """One version's files and package, then the index naming it current (last, as publish does)."""
    model = model_path.read_bytes()
    prefix = f"models/{name}/{version}"
    s3.put_object(Bucket=bucket, Key=f"{prefix}/model.npz", Body=model)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/package.json", Body=json.dumps(package(name, version, model)))
    s3.put_object(Bucket=bucket, Key=f"models/{name}/index.json",
                  Body=json.dumps(index(name, version if current else None, [version])))
