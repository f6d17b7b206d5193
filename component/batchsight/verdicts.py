"""A judged image as the plant floor sees it, read from the messages a hand-off queued.

The OPC UA server and the Sparkplug node (publishers/plant.py) both get the hand-off's MQTT
messages; this turns them into verdicts: a ``result`` or ``correction`` message is one, and an
``alert`` for the same image in the same transaction makes it NG.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

Messages = list[tuple[str, bytes]]


class Evaluation(IntEnum):
    """The verdict as OPC 40001-101's ResultEvaluationEnum spells it (the PLC's OK / NG)."""

    UNDEFINED = 0
    OK = 1
    NOT_OK = 2
    NOT_DECIDABLE = 3   # anomalous, but below the alert settings (alerts.min_confidence, anomaly_rules)


@dataclass(frozen=True)
class Verdict:
    """One judged image as the plant floor sees it: a result, or an edge-first correction of one."""

    image_id: str
    part_id: str
    lot: str
    file_name: str
    model: str
    model_version: str
    is_anomalous: bool
    confidence: float
    anomaly_names: tuple[str, ...]
    evaluation: Evaluation
    judged_by: str
    batch_id: str
    captured_at: str
    detected_at: str
    corrected: bool = False

    @classmethod
    def from_payload(cls, payload: dict[str, Any], *, alert: bool, corrected: bool = False) -> Verdict:
        anomalous = bool(payload.get("is_anomalous"))
        evaluation = Evaluation.NOT_OK if alert else Evaluation.NOT_DECIDABLE if anomalous else Evaluation.OK
        return cls(image_id=str(payload.get("image_id", "")), part_id=str(payload.get("part_id", "")),
                   lot=str(payload.get("lot", "")), file_name=str(payload.get("file_name", "")),
                   model=str(payload.get("model", "")), model_version=str(payload.get("model_version", "")),
                   is_anomalous=anomalous, confidence=float(payload.get("confidence", 0.0)),
                   anomaly_names=tuple(str(n) for n in payload.get("anomaly_names", [])), evaluation=evaluation,
                   judged_by=str(payload.get("judged_by", "")), batch_id=str(payload.get("batch_id", "")),
                   captured_at=str(payload.get("captured_at", "")), detected_at=str(payload.get("detected_at", "")),
                   corrected=corrected)


def verdicts(messages: Messages) -> list[Verdict]:
    """The verdicts in one committed hand-off, in order: a ``result`` or ``correction`` message is a
    verdict; an ``alert`` for the same image in the same transaction makes it NG."""
    order: list[str] = []
    found: dict[str, tuple[dict[str, Any], bool]] = {}
    alerted: set[str] = set()
    for topic, body in messages:
        kind = topic.rsplit("/", 1)[-1]
        if kind not in ("result", "correction", "alert"):
            continue
        try:
            payload = json.loads(body)
        except ValueError:
            continue
        image_id = str(payload.get("image_id", ""))
        if kind == "alert":
            alerted.add(image_id)
        elif image_id not in found:
            order.append(image_id)
            found[image_id] = (payload, kind == "correction")
    return [Verdict.from_payload(found[i][0], alert=i in alerted, corrected=found[i][1]) for i in order]
