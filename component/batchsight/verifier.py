"""Decode every received image once, before it can join a batch.

Ingest acknowledges a file once it is complete, hashed and durable (images.inspect); only a
decoder finds corrupt compressed data inside a complete file, and decoding costs 15 to 30
times the hash. This thread hands each image to the decoder's child process (decoder.py),
which uses the gateway's second core, while the main loop keeps ingesting and publishing. An
image that does not decode goes to quarantine with the decoder's reason, as at ingest; one
that does becomes ``validated``. The queue is memory only: at start every ``received`` image
is queued again. After IDLE_SECONDS without work the decoder's process is closed.
"""
from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable

from batchsight.config import Config
from batchsight.decoder import Decoder, Verdict
from batchsight.journal import ImageRecord, ImageState, Journal
from batchsight.live_config import Configured
from batchsight.quarantine import set_aside

log = logging.getLogger(__name__)
GROUP = 256              # images recorded per journal transaction
RETRY_SECONDS = 2.0      # after a failure to record (a full disk): try the same images again
IDLE_SECONDS = 60.0      # without work this long, the decoder's process ends (it starts again in 0.2 s)
STOP_GRACE_SECONDS = 2.0  # for the image in hand; then the decoder's process is killed


class PixelVerifier(Configured):
    def __init__(self, config: Config, journal: Journal, *,
                 on_validated: Callable[[], None] = lambda: None, decoder: Decoder | None = None) -> None:
        self.config = config
        self.journal = journal
        self.decoder = decoder or Decoder()
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
        """Stop between images, or at once if a decode stalls; the rest stays ``received`` for
        the next start."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=STOP_GRACE_SECONDS)
            if self._thread.is_alive():
                self.decoder.interrupt()
                self._thread.join()
        self.decoder.close()

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
        try:
            item = self._queue.get(timeout=IDLE_SECONDS)
        except queue.Empty:
            self.decoder.close()  # a quiet line: its memory goes back until the next image
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
        images = [image for image in self.journal.get_many(image_ids) if image.state is ImageState.RECEIVED]
        decoded = []
        with contextlib.closing(self.decoder.decode_many([(i.path, i.ext) for i in images],
                                                         self.config.ingest)) as verdicts:
            for image, verdict in zip(images, verdicts, strict=False):  # the verdicts end early on stop()
                if self._stopping.is_set():
                    break  # a group of large images takes seconds: stop promptly, the rest stays received
                if self._accepted(image, verdict):
                    decoded.append(image.image_id)
        if decoded:
            self.journal.validated(decoded)
            self._on_validated()

    def _accepted(self, image: ImageRecord, verdict: Verdict) -> bool:
        reason = f"spool file {image.path} of image {image.image_id} is gone" if verdict.missing else verdict.reason
        if reason is not None:
            set_aside(self.config, self.journal, image, reason)
        return reason is None
