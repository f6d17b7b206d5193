"""Pull result documents back from the final bucket and match them to the journal.

The result key is deterministic (device prefix, capture day, image id), so one listing per
capture day under our own prefix finds every result that has arrived, and only those are
fetched.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from batchsight.config import Config
from batchsight.journal import ImageRecord, ImageState, Journal
from batchsight.live_config import Configured

log = logging.getLogger(__name__)


class ResultError(ValueError):
    """A result document that does not match its image or the contract."""


def result_day_prefix(config: Config, captured_at: str) -> str:
    day = datetime.fromisoformat(captured_at.replace("Z", "+00:00"))
    return f"results/{config.site}/{config.line}/{config.device}/{day:%Y}/{day:%m}/{day:%d}/"


def result_key(config: Config, image: ImageRecord) -> str:
    return f"{result_day_prefix(config, image.captured_at)}{image.image_id}.json"


def parse_result(raw: bytes, image_id: str) -> dict[str, Any]:
    document = json.loads(raw)
    if document.get("v") != 1 or document.get("image_id") != image_id:
        raise ResultError(f"result for {image_id} has version {document.get('v')!r} "
                          f"and image id {document.get('image_id')!r}")
    result = document.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("IsAnomalous"), bool):
        raise ResultError(f"result for {image_id} lacks result.IsAnomalous")
    return document


class ResultPuller(Configured):
    def __init__(self, config: Config, journal: Journal, *, s3: Any) -> None:
        self.config = config
        self.journal = journal
        self.s3 = s3

    def poll(self) -> list[str]:
        """Store every result that has arrived; returns the batch ids of the new ones."""
        waiting = self.journal.in_state(ImageState.SUBMITTED, limit=10_000)
        by_day: dict[str, list[ImageRecord]] = defaultdict(list)
        for image in waiting:
            by_day[result_day_prefix(self.config, image.captured_at)].append(image)
        stored: list[str] = []
        for prefix, images in by_day.items():
            present = self._listed(prefix)
            for image in images:
                key = result_key(self.config, image)
                if key in present and self._store(image, key):
                    stored.append(image.batch_id or "")
        return stored

    def _listed(self, prefix: str) -> set[str]:
        keys: set[str] = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.config.aws.final_bucket, Prefix=prefix):
            keys.update(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json"))
        return keys

    def _store(self, image: ImageRecord, key: str) -> bool:
        raw = self.s3.get_object(Bucket=self.config.aws.final_bucket, Key=key)["Body"].read()
        try:
            document = parse_result(raw, image.image_id)
        except (ValueError, ResultError) as exc:
            log.error("bad result document left for inspection", extra={"key": key, "error": str(exc)})
            return False
        result = document["result"]
        self.journal.advance([image.image_id], ImageState.RESULT_STORED,
                             is_anomalous=int(result["IsAnomalous"]),
                             confidence=float(result.get("Confidence", 0.0)),
                             result_json=json.dumps(document))
        return True
