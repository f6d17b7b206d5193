"""Operator feedback: an answer to an alert becomes a training label in the final bucket.

Operators (through the HMI) publish on ``.../inspection/feedback``:
``{"v": 1, "image_id": "...", "verdict": "confirmed" | "false_alarm", "label": "...", "operator": "..."}``.
The component validates it, records it in the journal file, and writes one manifest line in the
SageMaker Ground Truth / Lookout for Vision format next to the image's result, so a retraining
job can read the plant's corrections directly. Every message gets a reply on
``.../inspection/feedback/response`` saying whether it was taken and, if not, why.

An image judged at the edge only never went to the cloud, so its label would point at nothing:
its answer takes the image there too. The alerter holds such alerts ``retention.feedback_hours``
after their result (the archive keeps every image); an answer links the file into the
feedback folder (so no clean-up can take it before it is sent), and the upload puts the image at
the key a cloud-judged image has (``results/{site}/{line}/{device}/{yyyy}/{mm}/{dd}/{id}.{ext}``)
and then its label beside it, the same ``.label.manifest`` as for any other image, which
``batchsight dataset build`` reads. The cost: one PUT of the image, only for images operators
answered; nothing for the others.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from datetime import datetime, UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote

from batchsight.config import Config
from batchsight.journal import ImageRecord, ImageState, Journal
from batchsight.live_config import Configured
from batchsight.results import result_day_prefix

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
        if "image" not in json.loads(image.result_json or "{}"):
            self._keep_edge_image(image)
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

    def _keep_edge_image(self, image: ImageRecord) -> None:
        """Link the file of an image judged at the edge into the feedback folder, until it is sent."""
        kept = self.config.feedback_folder / f"{image.image_id}.{image.ext}"
        name = Path(image.path).name
        found = [p for p in (Path(image.path), self.config.held_folder / name, self.config.archive_folder / name)
                 if p.is_file()]
        if kept.is_file() or (not found and self._sent_before(image.image_id)):
            return  # kept for an answer not sent yet, or in the final bucket with an earlier one
        if not found:
            raise FeedbackError(f"image {image.image_id} was judged at the edge and its file is no longer on this "
                                f"gateway (alerts are kept {self.config.retention.feedback_hours:g} h, "
                                "retention.feedback_hours): the answer cannot become a label")
        kept.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(found[0], kept)  # same file system: no copy, and no clean-up can take it now
        except FileExistsError:
            pass
        except OSError:
            shutil.copyfile(found[0], kept)

    def _sent_before(self, image_id: str) -> bool:
        with self._lock:
            row = self._db.execute("SELECT uploaded FROM feedback WHERE image_id=?", (image_id,)).fetchone()
        return bool(row and row[0])

    def _upload(self, image_id: str, verdict: str, label: str, operator: str, at: float) -> None:
        image = self.journal.get(image_id)
        if image is None or not image.result_json:
            for kept in self.config.feedback_folder.glob(f"{image_id}.*"):
                kept.unlink(missing_ok=True)
            return  # pruned since: nothing left to label
        document = json.loads(image.result_json)
        image_key = document["image"]["key"] if "image" in document else self._send_edge_image(image, document)
        if image_key is None:
            return
        model_said = bool(document["result"]["IsAnomalous"])
        anomalous = model_said if verdict == "confirmed" else not model_said
        line = manifest_line(bucket=self.config.aws.final_bucket, image_key=image_key,
                             anomalous=anomalous, operator=operator, at=at)
        if label:
            line["anomaly-label-metadata"]["operator-label"] = label
        key = image_key.rsplit(".", 1)[0] + ".label.manifest"
        self.s3.put_object(Bucket=self.config.aws.final_bucket, Key=key,
                           Body=(json.dumps(line) + "\n").encode(), ContentType="application/x-ndjson")
        (self.config.feedback_folder / f"{image.image_id}.{image.ext}").unlink(missing_ok=True)

    def _send_edge_image(self, image: ImageRecord, document: dict[str, Any]) -> str | None:
        """Put an edge-judged image where a cloud-judged one lies; its key, or None when it is
        neither kept here nor there already (logged)."""
        key = f"{result_day_prefix(self.config, image.captured_at)}{image.image_id}.{image.ext}"
        kept = self.config.feedback_folder / f"{image.image_id}.{image.ext}"
        bucket = self.config.aws.final_bucket
        if kept.is_file():
            model = document.get("model", {})
            self.s3.put_object(Bucket=bucket, Key=key, Body=kept.read_bytes(),
                               ContentType="image/jpeg" if image.ext == "jpg" else "image/png",
                               Metadata={"file-name": quote(image.file_name), "captured-at": image.captured_at,
                                         "judged-by": "edge", "model": quote(str(model.get("name", ""))),
                                         "model-version": str(model.get("version") or "")})
            return key
        from botocore.exceptions import ClientError

        try:
            self.s3.head_object(Bucket=bucket, Key=key)  # sent with an earlier answer
        except ClientError:
            log.warning("feedback not uploaded: the image, judged at the edge, is neither kept here nor in S3",
                        extra={"image_id": image.image_id, "key": key})
            return None
        return key

    def close(self) -> None:
        self._db.close()


def _image_id_of(raw: bytes) -> str:
    try:
        value = json.loads(raw).get("image_id", "")
        return value if isinstance(value, str) else ""
    except Exception:  # noqa: BLE001 - the reply just omits it
        return ""
