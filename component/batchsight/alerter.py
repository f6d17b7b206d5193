"""Publish stored results (and alerts) and finish each image: journal it, then clean up.

An image becomes ALERTED only after the broker acknowledged its messages, so a broker
outage or a crash delays alerts but never drops them.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from batchsight import alerts
from batchsight.config import Config
from batchsight.journal import ImageRecord, ImageState, Journal
from batchsight.publishers import Publisher, PublishError

log = logging.getLogger(__name__)


class Alerter:
    def __init__(self, config: Config, journal: Journal, publisher: Publisher) -> None:
        self.config = config
        self.journal = journal
        self.publisher = publisher

    def publish_pending(self) -> int:
        """Publish what is ready, in arrival order; stops at the first broker failure."""
        done = 0
        try:
            for image in self.journal.in_state(ImageState.RESULT_STORED):
                self._publish_image(image)
                done += 1
            for batch_id in self.journal.batch_done_unsummarized():
                images = self.journal.batch_images(batch_id)
                self.publisher.publish(self.config.topic("batch"),
                                       alerts.batch_payload(self.config, batch_id, images))
                self.journal.mark_summarized(batch_id)
        except PublishError as exc:
            log.warning("alerts held until the broker is back", extra={"error": str(exc)})
        return done

    def _publish_image(self, image: ImageRecord) -> None:
        payload = alerts.result_payload(self.config, image)
        self.publisher.publish(self.config.topic("result"), payload)
        if alerts.is_alert(self.config, image):
            self.publisher.publish(self.config.topic("alert"), payload)
            log.info("defect alert published", extra={"image_id": image.image_id,
                                                      "file_name": image.file_name,
                                                      "confidence": payload["confidence"]})
        self.journal.advance([image.image_id], ImageState.ALERTED)
        self._retire(Path(image.path))

    def _retire(self, path: Path) -> None:
        """The result is safe in the cloud and on MQTT: the local copy can go."""
        try:
            if self.config.retention.after_result == "archive":
                self.config.archive_folder.mkdir(parents=True, exist_ok=True)
                os.replace(path, self.config.archive_folder / path.name)
            else:
                path.unlink()
        except FileNotFoundError:
            pass  # already retired before a restart
