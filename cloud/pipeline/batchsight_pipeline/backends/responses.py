"""Reading what a remote model service answers: its DetectAnomalyResult, or its error.

Every remote backend hands the drain the same DetectAnomalyResult shape, checked and made
JSON-safe here once, so a new backend cannot store a result the report and the edge cannot
read. A segmentation mask follows the ``MASK_KEY`` convention: PNG bytes under that private
key of the result dict, which the drain pops and stores as an object of its own.

The error helpers read a botocore ``ClientError`` without assuming its ``Error`` part is
complete: the backends decide on the code and the message (retry, poison, busy).
"""
from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from batchsight_pipeline.backends.base import MASK_KEY, UnexpectedModelResponse

__all__ = ["error_code", "error_message", "normalise_result", "unit_interval"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def normalise_result(result: Mapping[str, Any]) -> dict[str, Any]:
    """Check a DetectAnomalyResult and make it JSON-safe.

    Keeps Source, IsAnomalous, Confidence and Anomalies; an AnomalyMask (bytes from the
    Lookout for Vision API, base64 text from a JSON model answer) moves to ``MASK_KEY`` as
    PNG bytes. Anything malformed raises UnexpectedModelResponse instead of being guessed.
    """
    if not isinstance(result, Mapping):
        raise UnexpectedModelResponse(f"DetectAnomalyResult must be an object, got {type(result).__name__}")
    verdict = result.get("IsAnomalous")
    if not isinstance(verdict, bool):
        raise UnexpectedModelResponse(f"DetectAnomalyResult.IsAnomalous must be a boolean, got {verdict!r}")
    out: dict[str, Any] = {"Source": _source(result.get("Source")), "IsAnomalous": verdict,
                           "Confidence": unit_interval(result.get("Confidence"), "Confidence")}
    anomalies = result.get("Anomalies")
    if anomalies is not None:
        if not isinstance(anomalies, list) or not all(isinstance(a, Mapping) for a in anomalies):
            raise UnexpectedModelResponse("DetectAnomalyResult.Anomalies must be a list of objects")
        out["Anomalies"] = [_anomaly(a) for a in anomalies]
    mask = result.get("AnomalyMask")
    if mask is not None:
        out[MASK_KEY] = _mask_bytes(mask)
    return out


def unit_interval(value: Any, name: str) -> float:
    """``value`` as a float in [0, 1]; booleans, NaN and anything outside are a bad answer."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise UnexpectedModelResponse(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def error_code(exc: ClientError) -> str:
    """The error's code (e.g. ``ValidationException``), or "" when the answer has none."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_message(exc: ClientError) -> str:
    """The error's message, or "" when the answer has none."""
    return str(exc.response.get("Error", {}).get("Message", ""))


def _source(source: Any) -> dict[str, str]:
    """The result's Source; a model that names none answered directly."""
    source = source or {"Type": "direct"}
    if not isinstance(source, Mapping) or not isinstance(source.get("Type"), str):
        raise UnexpectedModelResponse(f"DetectAnomalyResult.Source must be {{'Type': str}}, got {source!r}")
    return {"Type": source["Type"]}


def _anomaly(anomaly: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": str(anomaly.get("Name", ""))}
    pixel = anomaly.get("PixelAnomaly")
    if isinstance(pixel, Mapping):
        out["PixelAnomaly"] = {k: (float(v) if k == "TotalPercentageArea" else str(v))
                               for k, v in pixel.items() if k in ("TotalPercentageArea", "Color")}
    return out


def _mask_bytes(mask: Any) -> bytes:
    if isinstance(mask, str):
        try:
            mask = base64.b64decode(mask, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UnexpectedModelResponse("AnomalyMask is text but not base64") from exc
    if not isinstance(mask, (bytes, bytearray)) or not bytes(mask).startswith(PNG_SIGNATURE):
        raise UnexpectedModelResponse("AnomalyMask must be PNG bytes")
    return bytes(mask)
