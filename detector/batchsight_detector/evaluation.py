"""Measuring a detector on a labelled folder: AUROC, the threshold's confusion, latency.

The folder has the layout of ../shared/data/<set>/test: ``normal/`` and ``anomaly/``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .features import UnreadableImage

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder (by suffix), sorted by name (for a repeatable fit and a
    stable report)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_images(folder: Path) -> list[bytes]:
    """The bytes of `image_files(folder)`."""
    return [p.read_bytes() for p in image_files(folder)]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by rank statistics (ties count half); labels 1 = anomalous."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("AUROC needs both normal and anomalous images")
    return pair_auroc(negatives, positives)


def pair_auroc(normal: np.ndarray, other: np.ndarray) -> float:
    """Share of (normal, other) pairs in which `other` outscores `normal`, ties counting half:
    the AUROC of telling `other` from `normal` by score (0.5 = indistinguishable)."""
    greater = (other[:, None] > normal[None, :]).mean()
    ties = (other[:, None] == normal[None, :]).mean()
    return float(greater + 0.5 * ties)


@dataclass(frozen=True)
class Evaluation:
    auroc: float
    true_positive: int
    false_positive: int
    true_negative: int
    false_negative: int
    latency_ms_median: float
    latency_ms_p95: float

    @property
    def precision(self) -> float:
        flagged = self.true_positive + self.false_positive
        return self.true_positive / flagged if flagged else 0.0

    @property
    def recall(self) -> float:
        actual = self.true_positive + self.false_negative
        return self.true_positive / actual if actual else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def lines(self) -> list[str]:
        return [
            f"AUROC {self.auroc:.3f}",
            f"precision {self.precision:.3f}  recall {self.recall:.3f}  F1 {self.f1:.3f} at the model's threshold",
            "confusion matrix (rows: actual normal, anomaly; columns: predicted normal, anomaly)",
            f"  normal   {self.true_negative:4d} {self.false_positive:4d}",
            f"  anomaly  {self.false_negative:4d} {self.true_positive:4d}",
            f"latency per image incl. decode: median {self.latency_ms_median:.1f} ms, "
            f"p95 {self.latency_ms_p95:.1f} ms",
        ]


class Detector(Protocol):
    """What evaluate() needs of a model: DetectorModel and onnx_model.OnnxAnomalyModel have it."""

    def detect(self, image_bytes: bytes) -> dict[str, Any]: ...

    def score(self, image_bytes: bytes) -> float: ...


def evaluate(model: Detector, test_folder: Path) -> Evaluation:
    """Score every test image once, timing each call (decode included); an image that cannot
    be decoded is an UnreadableImage that names its file."""
    normal, anomaly = image_files(test_folder / "normal"), image_files(test_folder / "anomaly")
    labels = np.array([0] * len(normal) + [1] * len(anomaly))
    scores, verdicts, times = [], [], []
    for index, path in enumerate(normal + anomaly):
        data = path.read_bytes()
        started = time.perf_counter()
        try:
            result = model.detect(data)
        except ValueError as exc:
            raise UnreadableImage("test", index, str(exc), path) from exc
        times.append((time.perf_counter() - started) * 1000)
        verdicts.append(bool(result["IsAnomalous"]))
        scores.append(model.score(data))
    predicted = np.array(verdicts)
    return Evaluation(
        auroc=auroc(np.array(scores), labels),
        true_positive=int(np.sum(predicted & (labels == 1))), false_positive=int(np.sum(predicted & (labels == 0))),
        true_negative=int(np.sum(~predicted & (labels == 0))), false_negative=int(np.sum(~predicted & (labels == 1))),
        latency_ms_median=float(np.median(times)), latency_ms_p95=float(np.percentile(times, 95)))
