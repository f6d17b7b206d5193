"""A score against a threshold, as the DetectAnomalyResult every backend returns.

Shared by the detector's two model kinds (model.DetectorModel, onnx_model.OnnxAnomalyModel).
"""
from __future__ import annotations

import math
from typing import Any


def verdict(score: float, threshold: float, spread: float) -> dict[str, Any]:
    """Verdict in the Lookout for Vision DetectAnomalyResult shape.

    Confidence is the confidence in the verdict, not in "anomalous": the distance of
    the score from the threshold in units of the held-out score spread, through a
    logistic.  The logistic, not a normal CDF, because scores (maxima over an image)
    have a Gumbel, i.e. exponential, upper tail: its odds fall by e per spread (the
    Gumbel scale), as the tail's probability does.  A score on the threshold gives
    0.5, one spread away 0.73, three 0.95; a median good part under the unsupervised
    threshold is about 3.5 spreads below it, 0.97.
    """
    distance = abs(score - threshold) / spread
    return {
        "Source": {"Type": "direct"},
        "IsAnomalous": bool(score > threshold),
        "Confidence": round(1.0 / (1.0 + math.exp(-distance)), 6),
    }
