"""A model package's manifest (contracts/schemas/model_package.schema.json), built from a fitted model.

Why everything a version is judged by goes into it: a package is immutable and outlives the
machine that made it, so the threshold, the metrics on its held-out images, the dataset's
checksum and the detector release that fitted it must travel with the model file, the way a
result document names the model version that judged it.

The detector's version is the installed ``batchsight`` distribution's version (pyproject.toml
``[project] version``, read with importlib.metadata): batchsight_detector ships in that
distribution and has no version of its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from batchsight_tools.dataset.manifest import sha256

MODEL_KEY = "model.npz"
DISTRIBUTION = "batchsight"


def detector_version() -> str:
    """The release of batchsight_detector doing the fitting ("0+unknown" when run uninstalled)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass(frozen=True)
class Candidate:
    """What a publish puts in a new version: the fitted model's file and what was measured of it."""

    model_file: bytes
    method: str
    threshold: float
    metrics: dict[str, Any]
    dataset_manifest: str
    dataset_sha256: str


def document(candidate: Candidate, *, name: str, version: str, created_at: str) -> dict[str, Any]:
    """The package.json of ``version``."""
    return {
        "v": 1,
        "name": name,
        "version": version,
        "created_at": created_at,
        "detector": {"version": detector_version(), "method": candidate.method},
        "files": {"model": {"key": MODEL_KEY, "sha256": sha256(candidate.model_file),
                            "bytes": len(candidate.model_file)}},
        "threshold": float(candidate.threshold),
        "metrics": candidate.metrics,
        "dataset": {"manifest": candidate.dataset_manifest, "sha256": candidate.dataset_sha256},
    }
