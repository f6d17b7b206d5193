"""The MQTT payloads PLCs and HMIs read: flat, small, versioned (schemas/ holds their JSON Schemas).

Topics: {prefix}/{site}/{line}/{device}/inspection/{alert|result|correction|batch|status|shadow}
(shadow.py: the shadow model's figures), or the ISA-95 layout (topics.py). Every verdict names the
model that gave it: ``model`` (its name, as before) and ``model_version`` (empty when the model has
none: a plain model file, or a cloud backend that does not say), and the part it judged:
``part_id`` and ``lot`` (part_context.py; empty when the image did not say).
"""
from __future__ import annotations

import json
from datetime import datetime, UTC
from typing import Any

from batchsight.config import Config
from batchsight.journal import ImageRecord, Route
from batchsight.results import result_key

PAYLOAD_VERSION = 1


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _anomaly_names(result: dict[str, Any]) -> list[str]:
    return [str(a.get("Name")) for a in result.get("Anomalies", []) if a.get("Name") not in (None, "background")]


def result_payload(config: Config, image: ImageRecord) -> dict[str, Any]:
    """One per image, anomalous or not."""
    document = json.loads(image.result_json or "{}")
    result = document.get("result", {})
    return {
        "v": PAYLOAD_VERSION,
        "site": config.site, "line": config.line, "device": config.device,
        "image_id": image.image_id, "file_name": image.file_name, "batch_id": image.batch_id or "",
        "part_id": image.part_id or "", "lot": image.lot or "",
        "is_anomalous": bool(image.is_anomalous), "confidence": round(float(image.confidence or 0.0), 4),
        "anomaly_names": _anomaly_names(result),
        "captured_at": image.captured_at,
        "detected_at": document.get("processed_at", ""),
        "model": str(document.get("model", {}).get("name", "")),
        "model_version": str(document.get("model", {}).get("version") or ""),
        "judged_by": document.get("judged_by", "cloud"),
        "result_key": "" if image.route == Route.EDGE.value else result_key(config, image),
    }


def correction_payload(config: Config, image: ImageRecord) -> dict[str, Any]:
    """The cloud overruled the edge's published verdict (edge-first mode): the new verdict wins."""
    local = json.loads(image.local_json or "{}")
    return {**result_payload(config, image),
            "previous_is_anomalous": bool(local.get("result", {}).get("IsAnomalous")),
            "previous_confidence": round(float(local.get("result", {}).get("Confidence", 0.0)), 4),
            "previous_model": local.get("model", {}).get("name", ""),
            "previous_model_version": str(local.get("model", {}).get("version") or ""),
            "corrected_at": utc_now()}


def is_alert(config: Config, image: ImageRecord) -> bool:
    """Anomalous, confident enough, and (for segmentation results) matching a per-name rule."""
    if not image.is_anomalous or float(image.confidence or 0.0) < config.alerts.min_confidence:
        return False
    rules = config.alerts.rules()
    anomalies = json.loads(image.result_json or "{}").get("result", {}).get("Anomalies", [])
    named = [a for a in anomalies if a.get("Name") not in (None, "background")]
    if not rules or not named:
        return True  # no rules, or a classification model: the verdict decides
    return any(a["Name"] in rules
               and float(a.get("PixelAnomaly", {}).get("TotalPercentageArea", 0.0)) >= rules[a["Name"]]
               for a in named)


def batch_payload(config: Config, batch_id: str, images: list[ImageRecord]) -> dict[str, Any]:
    anomalous = sum(1 for i in images if i.is_anomalous)
    return {"v": PAYLOAD_VERSION, "site": config.site, "line": config.line, "device": config.device,
            "batch_id": batch_id, "images": len(images), "anomalous": anomalous,
            "anomaly_rate": round(anomalous / len(images), 4) if images else 0.0,
            "completed_at": utc_now()}


def status_payload(config: Config, *, state: str, counts: dict[str, int], cloud: str,
                   alarms: list[str] | None = None, alarm_codes: list[int] | None = None, judging: str = "cloud",
                   detector_problem: str = "", models: dict[str, str] | None = None) -> dict[str, Any]:
    """``alarm_codes``: one code per alarm, in its order (plant_state.Alarm), for a PLC that must
    not parse text. ``models``: the model judging at the edge and the shadow beside it, by name
    and version (DetectorServer.models); empty in cloud mode."""
    return {"v": PAYLOAD_VERSION, "site": config.site, "line": config.line, "device": config.device,
            "state": state, "cloud": cloud, "alarms": (alarms or [])[:10], "alarm_codes": (alarm_codes or [])[:10],
            "inference": config.inference.mode, "judging": judging,
            "detector_problem": detector_problem[:500],
            **{k: (models or {}).get(k, "") for k in ("model", "model_version", "shadow_model",
                                                       "shadow_model_version")},
            "waiting": counts.get("received", 0) + counts.get("validated", 0),
            "in_cloud": sum(counts.get(s, 0) for s in ("uploaded", "enqueued", "submitted")),
            "alerted": counts.get("alerted", 0), "quarantined": counts.get("quarantined", 0),
            **{k: counts.get(k, 0) for k in ("judged_at_edge", "audited", "corrected")},
            "updated_at": utc_now()}
