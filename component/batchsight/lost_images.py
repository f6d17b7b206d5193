"""Which late images the cloud confirms lost: a gateway re-sends only those (backpressure).

An image whose result is late is nearly always still in the cloud, waiting in a queue behind a
backlog. Re-sending it would add load exactly when the pipeline is saturated, from every gateway
at once. So the cloud's pipeline status (``status/pipeline.json`` in the final bucket, written by
the pipeline's CheckWork; contracts/schemas/pipeline_status.schema.json) says how loaded it is
and when its image queue was last seen empty. An image is lost only when both hold:

- no queue message: it was submitted before the queue was last seen empty (its message has been
  taken since: judged, or set aside with a reason in the dead-letter queue);
- no source object: its upload is not in the source bucket (the drain moves an image only after
  writing its result, so a result would be here, and a dead-lettered image with its object still
  there is the cloud's to explain, not ours to send again).

Without a status (a stack that writes none yet, or one not readable) nothing counts as lost: the
images stay spooled and the component's status says why.
"""
from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batchsight.cloud_link import source_key
from batchsight.config import Config
from batchsight.journal_schema import ImageRecord

log = logging.getLogger(__name__)
STATUS_KEY = "status/pipeline.json"  # the default model route's


def status_key(route: str) -> str:
    """The status object of a model route: each model's pipeline has its own load."""
    return STATUS_KEY if route == "default" else f"status/pipeline-{route}.json"


@dataclass(frozen=True)
class PipelineStatus:
    """What a gateway needs of the cloud's status: backpressure, and when the queue was empty."""

    backpressure: bool
    backlog: int
    queue_empty_at: float | None  # epoch seconds; None when not known
    reason: str

    @classmethod
    def parse(cls, raw: bytes) -> PipelineStatus:
        document = json.loads(raw)
        empty = str(document.get("queue_empty_at") or "")
        return cls(backpressure=bool(document.get("backpressure")), backlog=int(document.get("backlog", 0)),
                   queue_empty_at=datetime.fromisoformat(empty.replace("Z", "+00:00")).timestamp() if empty else None,
                   reason=str(document.get("reason", "")))


class LossCheck:
    """Reads the pipeline status, and lists the source bucket for the images it may confirm lost."""

    def __init__(self, config: Config, *, s3: Any) -> None:
        self.config = config
        self.s3 = s3

    def status(self) -> PipelineStatus | None:
        """The cloud's status now, or None (none written yet, or not readable: logged)."""
        try:
            key = status_key(self.config.aws.model)
            raw = self.s3.get_object(Bucket=self.config.aws.final_bucket, Key=key)["Body"].read()
            return PipelineStatus.parse(raw)
        except Exception as exc:  # noqa: BLE001 - any failure means "not known", never a crash
            log.warning("pipeline status not read; late images stay spooled", extra={"error": str(exc)})
            return None

    def lost(self, images: list[ImageRecord]) -> list[str]:
        """The ids of ``images`` (submitted before the queue was last empty) whose upload is gone."""
        by_day: dict[str, list[ImageRecord]] = defaultdict(list)
        for image in images:
            key = source_key(self.config, image)
            by_day[key.rsplit("/", 1)[0] + "/"].append(image)
        gone: list[str] = []
        for prefix, day in by_day.items():
            present = self._listed(prefix)
            gone += [image.image_id for image in day if source_key(self.config, image) not in present]
        return gone

    def _listed(self, prefix: str) -> set[str]:
        keys: set[str] = set()
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.config.aws.source_bucket,
                                                                        Prefix=prefix):
            keys.update(item["Key"] for item in page.get("Contents", []))
        return keys
