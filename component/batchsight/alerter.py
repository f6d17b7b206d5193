"""Hand stored results (and alerts) to the outbox, retire the files, and send the outbox.

For each image whose result is stored, its ``result`` message (and ``alert`` message when it
is one) are queued in the outbox and the image becomes ALERTED in ONE journal transaction:
the handoff happens exactly once, whatever crashes. Only then is the local file retired.
Batch summaries are queued the same way once every image of the batch is handed off, so a
summary always follows its images. The outbox then sends in order, deleting each message
after the broker's PUBACK (``publishers/outbox.py``): a broker outage delays alerts, it
never drops or reorders them.

An alert judged at the edge only (its image never went to the cloud) is not deleted at once
but held for ``retention.feedback_hours``, so that an operator's answer can still take the
image to the final bucket as a label (feedback.py).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from batchsight import alerts
from batchsight.config import Config
from batchsight.journal import ImageRecord, ImageState, Journal, Route
from batchsight.live_config import Configured
from batchsight.publishers import Publisher, PublishError
from batchsight.publishers.base import encode
from batchsight.publishers.outbox import Outbox

log = logging.getLogger(__name__)


class Alerter(Configured):
    def __init__(self, config: Config, journal: Journal, publisher: Publisher, *,
                 outbox: Outbox | None = None) -> None:
        self.config = config
        self.journal = journal
        self.publisher = publisher
        self.outbox = outbox or Outbox(journal)
        self._swept = False
        self._lock = threading.Lock()  # hand-offs come from the outbox stage and the main loop
        self._handed: list[tuple[ImageRecord, bool]] = []  # queued, their files not retired yet

    def publish_pending(self) -> int:
        """Hand off what is ready, then send the outbox; returns the images handed off. (The
        component does the two on separate threads: event_path.py.)"""
        self.retire_leftovers()
        done = self.hand_off()
        self.outbox.drain(self.publisher)
        return done

    def retire_leftovers(self) -> None:
        """Once, at start: files of images handed off just before a crash, not yet retired."""
        if not self._swept:
            self._retire_leftovers()
            self._swept = True

    def hand_off(self) -> int:
        """Queue every stored result (and its alert) and the summaries of finished batches, then
        retire the files of the images queued; returns the images handed off."""
        count = self.queue_results()
        self.retire_handed_off()
        return count

    def queue_results(self) -> int:
        """``hand_off`` without the retiring, for a caller that sends first (event_path.py): the
        files wait in ``retire_handed_off``, and a crash before it leaves them to the start-up's
        sweep (``retire_leftovers``).

        From any thread, one at a time (each claim is guarded in the journal anyway: a result is
        never handed off twice).
        """
        with self._lock:
            return self._hand_off()

    def retire_handed_off(self) -> None:
        """Retire the files of the images queued so far (their results are safe in the outbox)."""
        with self._lock:
            handed, self._handed = self._handed, []
        for image, alert in handed:
            self._retire(image, alert)

    def _hand_off(self) -> int:
        prepared: list[tuple[ImageRecord, list[tuple[str, bytes]], bool, bool | None]] = []
        for image in self.journal.in_state(ImageState.RESULT_STORED):
            corrected = self._overrules(image)
            alert = alerts.is_alert(self.config, image) and corrected is not False
            try:
                messages = self._messages(image, corrected, alert)
            except PublishError as exc:  # cannot happen with our payloads; never block the others
                log.error("result message refused; image left unpublished",
                          extra={"image_id": image.image_id, "error": str(exc)})
                continue
            prepared.append((image, messages, alert, corrected))
        claimed: list[tuple[ImageRecord, bool]] = []
        if prepared:
            with self.outbox.handoff() as tx:
                for image, messages, alert, corrected in prepared:
                    if not tx.claim_image(image.image_id, corrected=corrected):
                        continue  # handed off already
                    for topic, body in messages:
                        tx.put(topic, body)
                    claimed.append((image, alert))
        for image, alert in claimed:
            self._queued(image, alert)
        for batch_id in self.journal.batch_done_unsummarized():
            topic = self.config.topic("batch")
            body = encode(topic, alerts.batch_payload(self.config, batch_id, self.journal.batch_images(batch_id)))
            with self.outbox.handoff() as tx:
                if tx.claim_batch(batch_id):
                    tx.put(topic, body)
        return len(claimed)

    def _queued(self, image: ImageRecord, alert: bool) -> None:
        """Its messages are in the outbox, its result safe (in the cloud, or the journal for an edge
        verdict): say so for an alert, and retire its file once sent (``retire_handed_off``)."""
        if alert:
            log.info("defect alert queued", extra={"image_id": image.image_id, "file_name": image.file_name,
                                                   "confidence": round(float(image.confidence or 0), 4)})
        self._handed.append((image, alert))

    def publish_verdict(self, image: ImageRecord, **result: Any) -> bool:
        """Store the edge's verdict on an image (``result``: route, is_anomalous, confidence,
        result_json) and queue its result (and alert), the image ALERTED, in ONE transaction: the
        journal records the verdict before its message can go out, with one sync rather than a
        store and then a hand-off. False when nothing was queued (its result stored already)."""
        stored = dataclasses.replace(image, state=ImageState.RESULT_STORED, **result)
        alert = alerts.is_alert(self.config, stored)
        try:
            messages = self._messages(stored, None, alert)
        except PublishError:  # cannot happen with our payloads: stored only, the hand-off says why
            messages = None
        with self._lock:
            with self.outbox.handoff() as tx:
                if not tx.store_result(image.image_id, **result) or messages is None:
                    return False
                tx.claim_image(image.image_id)
                for topic, body in messages:
                    tx.put(topic, body)
            self._queued(stored, alert)
        return True

    @staticmethod
    def _overrules(image: ImageRecord) -> bool | None:
        """For an image the edge judged first: does the cloud's verdict differ? None otherwise."""
        if not image.local_json:
            return None
        local = json.loads(image.local_json)["result"]
        return bool(local["IsAnomalous"]) != bool(image.is_anomalous)

    def _messages(self, image: ImageRecord, corrected: bool | None, alert: bool) -> list[tuple[str, bytes]]:
        """What to send for a stored result.

        Normally its result (and alert). For an image whose local verdict went out already:
        nothing when the cloud agrees; a correction (and the alert, when the cloud found the
        defect the edge missed) when it does not.
        """
        if corrected is None:
            kinds = [("result", alerts.result_payload(self.config, image))]
        elif corrected:
            kinds = [("correction", alerts.correction_payload(self.config, image))]
        else:
            return []
        if alert:
            kinds.append(("alert", alerts.result_payload(self.config, image)))
        return [(self.config.topic(kind), encode(self.config.topic(kind), payload)) for kind, payload in kinds]

    def publish_provisional(self, image: ImageRecord, document: dict[str, Any]) -> bool:
        """Queue the local verdict of an image the cloud will also judge (edge-first mode).

        The route, the local verdict and its messages commit in one transaction, like every
        hand-off here, so the provisional alert goes out exactly once.
        """
        result = document["result"]
        local = dataclasses.replace(image, is_anomalous=bool(result["IsAnomalous"]),
                                    confidence=float(result["Confidence"]), result_json=json.dumps(document))
        payload = alerts.result_payload(self.config, local)
        kinds = ("result", "alert") if alerts.is_alert(self.config, local) else ("result",)
        messages = [(self.config.topic(kind), encode(self.config.topic(kind), payload)) for kind in kinds]
        with self.outbox.handoff() as tx:
            if not tx.claim_audit(image.image_id, local.result_json or ""):
                return False
            for topic, body in messages:
                tx.put(topic, body)
        return True

    def _retire_leftovers(self) -> None:
        """Files of images handed off just before a crash, not yet retired: retire them now."""
        spool = self.config.work_folder / "spool"
        if not spool.is_dir():
            return
        for path in spool.iterdir():
            record = self.journal.get(path.stem)
            if record is not None and record.state is ImageState.ALERTED:
                self._retire(record, alerts.is_alert(self.config, record))

    def _retire(self, image: ImageRecord, alert: bool) -> None:
        """The result is safe in the cloud and on its way to MQTT: the local copy can go (an alert
        only the edge judged is held a while first, for an operator's answer)."""
        path = Path(image.path)
        held = (alert and image.route == Route.EDGE.value and self.config.retention.feedback_hours > 0)
        try:
            if self.config.retention.after_result == "archive":
                self.config.archive_folder.mkdir(parents=True, exist_ok=True)
                os.replace(path, self.config.archive_folder / path.name)
            elif held:
                self.config.held_folder.mkdir(parents=True, exist_ok=True)
                os.replace(path, self.config.held_folder / path.name)
                os.utime(self.config.held_folder / path.name)  # its hours count from now
            else:
                path.unlink()
        except FileNotFoundError:
            pass  # already retired before a restart
