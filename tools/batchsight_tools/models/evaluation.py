"""A model measured on a dataset's held-out images, by the detector's own evaluation.

Why through a temporary folder: ``batchsight_detector.evaluation.evaluate`` (what
`batchsight evaluate` runs) reads a ``normal/`` and ``anomaly/`` folder; writing the held-out
images there costs milliseconds and keeps one definition of AUROC, the threshold's confusion
and latency for the detector's command, ours, the package's metrics and the gate.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from batchsight_detector.evaluation import Detector, Evaluation, evaluate
from batchsight_detector.features import UnreadableImage
from batchsight_tools.dataset.loading import Image
from batchsight_tools.models.arguments import UsageError

PNG = b"\x89PNG"


def evaluate_images(model: Detector, images: list[Image]) -> Evaluation:
    """Evaluate on labelled images held in memory (both classes present: Dataset.evaluation)."""
    with tempfile.TemporaryDirectory(prefix="batchsight-eval-") as folder:
        root = Path(folder)
        origins: dict[str, str] = {}
        for kind in ("normal", "anomaly"):
            (root / kind).mkdir()
        for image in images:
            path = root / ("anomaly" if image.anomalous else "normal") / (
                image.image_id + (".png" if image.data.startswith(PNG) else ".jpg"))
            path.write_bytes(image.data)
            origins[path.name] = image.origin
        try:
            return evaluate(model, root)
        except UnreadableImage as exc:
            name = exc.path.name if exc.path is not None else ""
            raise UsageError(f"{origins.get(name, 'an evaluation image')}: {exc.reason}; remove it from the "
                             "dataset or replace it with a readable JPEG or PNG") from exc


def metrics(evaluation: Evaluation) -> dict[str, Any]:
    """The package's ``metrics`` (model_package.schema.json) from an evaluation."""
    return {
        "auroc": round(evaluation.auroc, 6),
        "f1": round(evaluation.f1, 6),
        "precision": round(evaluation.precision, 6),
        "recall": round(evaluation.recall, 6),
        "confusion": {"tp": evaluation.true_positive, "fp": evaluation.false_positive,
                      "tn": evaluation.true_negative, "fn": evaluation.false_negative},
        "images": {"normal": evaluation.true_negative + evaluation.false_positive,
                   "anomaly": evaluation.true_positive + evaluation.false_negative},
        "milliseconds_per_image": round(evaluation.latency_ms_median, 3),
    }
