"""Operator feedback: an answer to an alert becomes a training label in the final bucket.

Operators (through the HMI) publish on ``.../inspection/feedback``:
``{"v": 1, "image_id": "...", "verdict": "confirmed" | "false_alarm", "label": "...", "operator": "..."}``.
The component validates it, records it in the journal file, and writes one manifest line in the
SageMaker Ground Truth / Lookout for Vision format next to the image's result, so a retraining
job can read the plant's corrections directly. Every message gets a reply on
``.../inspection/feedback/response`` saying whether it was taken and, if not, why.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from datetime import datetime, UTC
from typing import Any

from batchsight.config import Config
from batchsight.journal import ImageState, Journal
from batchsight.live_config import Configured

log = logging.getLogger(__name__)
MAX_FEEDBACK_BYTES = 4096
VERDICTS = ("confirmed", "false_alarm")
_TEXT_LIMIT = 128
_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    image_id   TEXT PRIMARY KEY,
    verdict    TEXT NOT NULL,
    label      TEXT NOT NULL,
    operator   TEXT NOT NULL,
    at         REAL NOT NULL,
    uploaded   INTEGER NOT NULL DEFAULT 0
);
"""


class FeedbackError(ValueError):
    """The message cannot be taken; the text is sent back to the HMI."""


def parse_feedback(raw: bytes) -> dict[str, str]:
    if len(raw) > MAX_FEEDBACK_BYTES:
        raise FeedbackError(f"message is {len(raw)} bytes; the limit is {MAX_FEEDBACK_BYTES}")
    try:
        message = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FeedbackError(f"message is not JSON: {exc}") from exc
    if not isinstance(message, dict) or message.get("v") != 1:
        raise FeedbackError('message must be a JSON object with "v": 1')
    if message.get("verdict") not in VERDICTS:
        raise FeedbackError(f"verdict must be one of {', '.join(VERDICTS)}")
    fields = {"image_id": message.get("image_id"), "verdict": message["verdict"],
              "label": message.get("label", ""), "operator": message.get("operator", "")}
    for name, value in fields.items():
        if not isinstance(value, str) or len(value) > _TEXT_LIMIT:
            raise FeedbackError(f"{name} must be a string of at most {_TEXT_LIMIT} characters")
    if len(fields["image_id"]) != 64:
        raise FeedbackError("image_id must be the 64-character id from the alert")
    return fields


def manifest_line(*, bucket: str, image_key: str, anomalous: bool, operator: str, at: float) -> dict[str, Any]:
    """One line of a Ground Truth / Lookout for Vision classification manifest."""
    return {
        "source-ref": f"s3://{bucket}/{image_key}",
        "anomaly-label": int(anomalous),
        "anomaly-label-metadata": {
            "confidence": 1,
            "job-name": "labeling-job/batchsight-operator-feedback",
            "class-name": "anomaly" if anomalous else "normal",
            "human-annotated": "yes",
            "creation-date": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "type": "groundtruth/image-classification",
            "operator": operator,
        },
    }


class FeedbackStore(Configured):
    """Feedback rows in the journal file (a table of its own), uploaded when the cloud is up."""

    def __init__(self, config: Config, journal: Journal, *, s3: Any) -> None:
        self.config = config
        self.journal = journal
        self.s3 = s3
        self._db = sqlite3.connect(config.journal_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def handle(self, raw: bytes) -> dict[str, Any]:
        """Validate and record one message; the reply for the response topic."""
        try:
            fields = parse_feedback(raw)
            self._record(fields)
        except FeedbackError as exc:
            log.warning("feedback refused", extra={"error": str(exc)})
            return {"v": 1, "ok": False, "error": str(exc), "image_id": _image_id_of(raw)}
        log.info("operator feedback recorded", extra=fields)
        return {"v": 1, "ok": True, "image_id": fields["image_id"], "verdict": fields["verdict"]}

    def _record(self, fields: dict[str, str]) -> None:
        image = self.journal.get(fields["image_id"])
        if image is None or image.state not in (ImageState.RESULT_STORED, ImageState.ALERTED):
            raise FeedbackError(f"image {fields['image_id']} has no result on this gateway")
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO feedback (image_id, verdict, label, operator, at, uploaded)"
                             " VALUES (:image_id, :verdict, :label, :operator, :at, 0)",
                             {**fields, "at": time.time()})

    def upload_pending(self) -> int:
        """Write a manifest line per recorded answer; raises on a cloud error (retried later)."""
        with self._lock:
            rows = self._db.execute("SELECT image_id, verdict, label, operator, at FROM feedback"
                                    " WHERE uploaded=0 ORDER BY at LIMIT 100").fetchall()
        for image_id, verdict, label, operator, at in rows:
            self._upload(image_id, verdict, label, operator, at)
            with self._lock:
                self._db.execute("UPDATE feedback SET uploaded=1 WHERE image_id=? AND at=?", (image_id, at))
        return len(rows)

    def _upload(self, image_id: str, verdict: str, label: str, operator: str, at: float) -> None:
        image = self.journal.get(image_id)
        if image is None or not image.result_json:
            return  # pruned since: nothing left to label
        document = json.loads(image.result_json)
        if "image" not in document:  # judged at the edge: the image never went to the cloud
            log.info("feedback kept on the gateway: the image was judged at the edge and is not in S3",
                     extra={"image_id": image_id, "verdict": verdict})
            return
        model_said = bool(document["result"]["IsAnomalous"])
        anomalous = model_said if verdict == "confirmed" else not model_said
        line = manifest_line(bucket=self.config.aws.final_bucket, image_key=document["image"]["key"],
                             anomalous=anomalous, operator=operator, at=at)
        if label:
            line["anomaly-label-metadata"]["operator-label"] = label
        key = document["image"]["key"].rsplit(".", 1)[0] + ".label.manifest"
        self.s3.put_object(Bucket=self.config.aws.final_bucket, Key=key,
                           Body=(json.dumps(line) + "\n").encode(), ContentType="application/x-ndjson")

    def close(self) -> None:
        self._db.close()


def _image_id_of(raw: bytes) -> str:
    try:
        value = json.loads(raw).get("image_id", "")
        return value if isinstance(value, str) else ""
    except Exception:  # noqa: BLE001 - the reply just omits it
        return ""
