"""Result documents back from the final bucket, matched to the journal: pushed, or listed.

The drain pushes each result to the gateway's own queue (push_receiver.py hands each message to
``ResultPuller.take_pushed``); listing is the fallback. The result key is deterministic (device
prefix, capture day, image id), so one listing per capture day under our own prefix finds every
result that has arrived, and only those are fetched. While push works (``PushState``), a day is
listed only for images it has not brought within ``results.fallback_seconds`` (a send the drain
could not make, a result written before our queue existed, images from before this start), and
then once per ``fallback_seconds``: on a healthy day, never. Without push every waiting image's
day is listed every ``results.poll_seconds``, as before push existed.

Both ways store through ``_store``, one at a time, and only an image still waiting for its
result: a result that arrives twice (pushed and listed, or pushed again) is stored once.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
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


class PushState:
    """Since when (monotonic) results have been pushed to us, or None while they are not: the
    receiver's thread says, the puller reads."""

    def __init__(self) -> None:
        self._since: float | None = None

    def up(self, mono: float) -> None:
        if self._since is None:
            self._since = mono

    def down(self) -> None:
        self._since = None

    def since(self) -> float | None:
        return self._since


class ResultPuller(Configured):
    def __init__(self, config: Config, journal: Journal, *, s3: Any, push: PushState | None = None) -> None:
        self.config = config
        self.journal = journal
        self.s3 = s3
        self.push = push or PushState()  # never up: every waiting image is listed for
        self.lists = 0  # ListObjectsV2 pages requested, for the status and the tests
        self._first_waiting: dict[str, float] = {}  # image id -> when a poll first saw it waiting
        self._listed_at: dict[str, float] = {}  # day prefix -> when it was last listed
        self._storing = threading.Lock()  # the main loop's listing and the receiver's thread

    def poll(self, mono: float | None = None) -> list[str]:
        """Store every result that has arrived for the images due a listing (monotonic time
        ``mono``); returns the batch ids of the new ones."""
        mono = time.monotonic() if mono is None else mono
        by_day: dict[str, list[ImageRecord]] = defaultdict(list)
        for image in self._due(self.journal.in_state(ImageState.SUBMITTED, limit=10_000), mono):
            by_day[result_day_prefix(self.config, image.captured_at)].append(image)
        stored: list[str] = []
        for prefix, images in by_day.items():
            present = self._listed(prefix)
            self._listed_at[prefix] = mono
            for image in images:
                key = result_key(self.config, image)
                if key in present and self._store(image, key):
                    stored.append(image.batch_id or "")
        if by_day and self.push.since() is not None:  # push is up, yet these results did not come by it
            log.info("results listed as a fallback", extra={"days": len(by_day), "stored": len(stored)})
        return stored

    def take_pushed(self, body: str) -> str | None:
        """A message the drain pushed (docs/contracts.md): store its result if the image still
        waits for one; its batch id when stored, else None (already stored, or not ours)."""
        try:
            message = json.loads(body)
            image_id, key, document = str(message["image_id"]), str(message["key"]), message.get("document")
        except (ValueError, KeyError, TypeError) as exc:
            log.error("pushed message not understood, dropped", extra={"body": body[:200], "error": str(exc)})
            return None
        image = self.journal.get(image_id)
        if image is None or image.state != ImageState.SUBMITTED:
            return None  # its result came already (pushed twice, or listed first), or it is not ours
        if key != result_key(self.config, image):
            log.error("pushed result for another key dropped",
                      extra={"key": key, "expected": result_key(self.config, image)})
            return None
        raw = None if document is None else json.dumps(document).encode()
        return (image.batch_id or "") if self._store(image, key, raw) else None

    def _due(self, waiting: list[ImageRecord], mono: float) -> list[ImageRecord]:
        """The images to list for: all while push is down; else those push has not brought within
        results.fallback_seconds (or that waited before push came up), once per fallback_seconds."""
        self._first_waiting = {i.image_id: self._first_waiting.get(i.image_id, mono) for i in waiting}
        since = self.push.since()
        if since is None:
            return waiting
        fallback = self.config.results.fallback_seconds
        days = {result_day_prefix(self.config, i.captured_at) for i in waiting}
        self._listed_at = {day: at for day, at in self._listed_at.items() if day in days}
        return [i for i in waiting
                if (self._first_waiting[i.image_id] < since or mono - self._first_waiting[i.image_id] >= fallback)
                and mono - self._listed_at.get(result_day_prefix(self.config, i.captured_at), -math.inf) >= fallback]

    def _listed(self, prefix: str) -> set[str]:
        keys: set[str] = set()
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.config.aws.final_bucket, Prefix=prefix):
            self.lists += 1
            keys.update(o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json"))
        return keys

    def _store(self, image: ImageRecord, key: str, raw: bytes | None = None) -> bool:
        """Journal the result (``raw``, else fetched) of an image still waiting for one."""
        with self._storing:
            current = self.journal.get(image.image_id)
            if current is None or current.state != ImageState.SUBMITTED:
                return False  # stored meanwhile by the other way, or resubmitted
            if raw is None:
                raw = self.s3.get_object(Bucket=self.config.aws.final_bucket, Key=key)["Body"].read()
            return self._journal(image, key, raw)

    def _journal(self, image: ImageRecord, key: str, raw: bytes) -> bool:
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
