"""Decode every received image once, on a thread of its own, before it can join a batch.

Ingest acknowledges a file once it is complete, hashed and durable (images.inspect); only a
decoder finds corrupt compressed data inside a complete file, and decoding costs 15 to 30
times the hash. Pillow releases the GIL while it decodes, so this thread uses the gateway's
second core while the main loop keeps ingesting and publishing. An image that does not
decode goes to quarantine with the decoder's reason, as at ingest; one that does becomes
``validated``. The queue is memory only: at start every ``received`` image is queued again.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from batchsight.config import Config
from batchsight.images import InvalidImage, check_pixels
from batchsight.ingest import set_aside
from batchsight.journal import ImageRecord, ImageState, Journal

log = logging.getLogger(__name__)
GROUP = 256              # images recorded per journal transaction
RETRY_SECONDS = 2.0      # after a failure to record (a full disk): try the same images again


class PixelVerifier:
    def __init__(self, config: Config, journal: Journal, *,
                 on_validated: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.journal = journal
        self._on_validated = on_validated  # called on this thread after each recorded group
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        """Queue what an earlier run left unverified, then start the thread. Call it after
        ``Ingestor.recover_staging`` and before new files arrive: every queued image is in the spool."""
        self.submit(self.journal.ids_in_state(ImageState.RECEIVED))
        self._thread = threading.Thread(target=self._run, name="pixel-verifier", daemon=True)
        self._thread.start()

    def submit(self, image_ids: list[str]) -> None:
        for image_id in image_ids:
            self._queue.put(image_id)

    def stop(self) -> None:
        """Finish the image in hand and stop; the rest stays ``received`` for the next start."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            group = self._take()
            try:
                self.verify(group)
            except Exception as exc:  # noqa: BLE001 - a full disk or a locked journal: retry, never die
                log.error("decoded images not recorded; retrying", extra={"images": len(group), "error": str(exc),
                                                                        "retry_in_s": RETRY_SECONDS})
                self.submit(group)
                self._stopping.wait(RETRY_SECONDS)

    def _take(self) -> list[str]:
        """Block for one image, then take what else is queued, up to a group."""
        group = []
        item = self._queue.get()
        while item is not None:
            group.append(item)
            if len(group) == GROUP:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return group

    def verify(self, image_ids: list[str]) -> None:
        """Decode each image still ``received``; record the good ones in one transaction."""
        decoded = []
        for image in self.journal.get_many(image_ids):
            if self._stopping.is_set():
                break  # a group of large images takes seconds: stop promptly, the rest stays received
            if image.state is ImageState.RECEIVED and self._decodes(image):
                decoded.append(image.image_id)
        if decoded:
            self.journal.validated(decoded)
            self._on_validated()

    def _decodes(self, image: ImageRecord) -> bool:
        try:
            check_pixels(Path(image.path).read_bytes(), image.ext, self.config.ingest)
        except FileNotFoundError:
            set_aside(self.config, self.journal, image, f"spool file {image.path} of image {image.image_id} is gone")
            return False
        except InvalidImage as exc:
            set_aside(self.config, self.journal, image, str(exc))
            return False
        return True
