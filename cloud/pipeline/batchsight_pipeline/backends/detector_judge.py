"""Judging an image with batchsight's own detector, in the calling process.

Used by the serverless ``lambda`` backend (the drain function runs the detector itself) and by
the tools' ``local`` stand-in for a hosted model. The detector (numpy, onnxruntime) is imported
only here and only when one of them judges, so the other backends' functions never load it.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchsight_pipeline.backends.base import MASK_KEY, ModelRejectedImage

if TYPE_CHECKING:
    from batchsight_detector import DetectorModel

# The longest one judgement in the calling process may take (a large image on a busy vCPU; tens
# of milliseconds is usual): the drain's deadline for an in-process backend (ModelBackend).
IN_PROCESS_DETECT_SECONDS = 10.0
_models: dict[tuple[str, float], DetectorModel] = {}
_lock = threading.Lock()


def load(path: Path) -> DetectorModel:
    """The model in ``path``, loaded once per file version: a warm function keeps it, like an
    endpoint keeps its model in memory."""
    from batchsight_detector import DetectorModel

    key = (str(path), path.stat().st_mtime)
    with _lock:
        if key not in _models:
            _models[key] = DetectorModel.load(path)
        return _models[key]


def judge(model: DetectorModel, image: bytes) -> dict[str, Any]:
    """The DetectAnomalyResult, with the anomaly mask (PNG) of a defect for the report; an image
    the detector cannot decode is poison, never retried."""
    try:
        result = model.detect(image)
        if result["IsAnomalous"]:  # where the defect is: a second pass, for defects only
            result[MASK_KEY] = model.anomaly_mask_png(image)
    except ValueError as exc:
        raise ModelRejectedImage(str(exc)) from exc
    return result
