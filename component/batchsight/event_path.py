"""The event path: from a camera's close to the PLC's message, each stage woken by the one before.

    watcher (watchdog's thread): a file closed with a whole stream ----on_ready----> [ingest]
    [ingest]: stage, inspect, sync, journal ``received`` --verifier.submit--> [pixel-verifier]
              (edge modes: each image's bytes, once inspected --on_inspected (poke)--> [judge],
              which asks the detector while ingest syncs and the decoder decodes: detect_ahead.py)
    [pixel-verifier]: every pixel decoded in the decoder child, ``validated`` --on_validated--> [judge]
    [judge]: the local detector's verdict (asked ahead, or now), stored with its result and alert
             queued in the outbox (``alerted``, one transaction) --on_verdict (poke)--> [outbox]
    [outbox]: hand-off of results stored otherwise (the cloud's), publish in order, delete each
              row after the broker's PUBACK, then retire the images' files

Each stage is a thread of its own that sleeps until the stage before it pokes it, so an image
meets no tick on its way; the main loop (runtime.py) keeps what has its own schedule: batches,
the cloud, housekeeping, the status. Every hand-over is a journal state first: a crash anywhere
leaves the image in the state its last committed step recorded, and the start-up (staging,
``received`` images, stored results) takes it from there, exactly as before.

What still waits, and why:
- a file whose stream is not whole at its close, or that no close announced (a scan, a network
  mount, no inotify): the watcher's settle window or ``ingest.stable_seconds``, looked at every
  ``POLL_SECONDS`` by the ingest stage;
- the detector's health checks, a model being swapped in, and a broker that is down: the judge and
  outbox stages look again every ``POLL_SECONDS`` (and back off as before).

Locks: a configuration update (applied by the main loop) waits for the ingest and judge steps in
hand (``paused``), so no part changes its settings in the middle of a step; the disk guard is
shared with the main loop under its own lock.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from batchsight.housekeeping import disk_full
from batchsight.images import CheckedImage
from batchsight.ingest import IngestOutcome
from batchsight.wiring import Parts

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2     # what has no event to wake it: settling files, detector checks, a broker back
STOP_SECONDS = 10.0    # a stage's step in hand at a stop: one detection's timeout and then some
SEND_BUDGET_SECONDS = 1.0  # the outbox stage returns this often to look at its stop event


class Stage:
    """A worker thread running ``step`` when poked, and every ``every`` seconds anyway; an
    exception ends the stage and goes to ``on_failure`` (the component then stops, as it does
    when its main loop fails, and Greengrass restarts it)."""

    def __init__(self, name: str, step: Callable[[], None], *, every: float,
                 on_failure: Callable[[BaseException], None]) -> None:
        self.name, self.every = name, every
        self._step, self._on_failure = step, on_failure
        self._poked = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._poked.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self._poked.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=STOP_SECONDS)
            if self._thread.is_alive():
                log.warning("a stage did not finish its step in time; stopping without it",
                            extra={"stage": self.name})

    def _run(self) -> None:
        while True:
            self._poked.wait(self.every)
            self._poked.clear()  # before the step: a poke during it runs the step again
            if self._stopping.is_set():
                return
            try:
                self._step()
            except BaseException as exc:  # noqa: BLE001 - handed to the component, which stops
                self._on_failure(exc)
                return


class EventPath:
    """The ingest, judge and outbox stages over the parts the wiring built."""

    def __init__(self, parts: Parts, *, on_status: Callable[[], None], on_failure: Callable[[BaseException], None],
                 wake_main: Callable[[], None]) -> None:
        self.parts = parts
        self._on_status = on_status  # something the status topic shows changed: publish it now
        self._wake_main = wake_main
        self._ingest_lock = threading.Lock()
        self._judge_lock = threading.Lock()
        self.disk_lock = threading.Lock()
        self._restage = False  # a full disk left files in staging: ingest them once space returns
        self.ingest = Stage("ingest", self._ingest_step, every=POLL_SECONDS, on_failure=on_failure)
        self.judge = Stage("judge", self._unless_disk_full(self._judge_step), every=POLL_SECONDS,
                           on_failure=on_failure)
        self.outbox = Stage("outbox", self._unless_disk_full(self._send_step), every=POLL_SECONDS,
                            on_failure=on_failure)
        parts.watcher.on_ready = self.ingest.poke
        parts.ingestor.on_inspected = self._inspected
        parts.judge.on_verdict = self._verdict

    def start(self) -> None:
        """After ``Ingestor.recover_staging`` and ``PixelVerifier.start``; before the watcher."""
        for stage in (self.outbox, self.judge, self.ingest):
            stage.start()

    def stop(self) -> None:
        for stage in (self.ingest, self.judge, self.outbox):
            stage.stop()

    def validated(self) -> None:
        """The verifier recorded decoded images: judge them now (edge modes), or let the main loop
        batch them (cloud mode)."""
        if self.parts.judge.config.inference.mode == "cloud":
            self._wake_main()
        else:
            self.judge.poke()

    def handed_off(self) -> None:
        """Messages were queued in the outbox (by the main loop or a stage): send them now."""
        self.outbox.poke()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No ingest or judge step runs inside: for a configuration update."""
        with self._ingest_lock, self._judge_lock:
            yield

    # --- ingest --------------------------------------------------------------------------------
    def _ingest_step(self) -> None:
        with self._ingest_lock:
            parts = self.parts
            with self.disk_lock:
                before = parts.disk.state
                held = parts.disk.check() is not None  # when full, complete files stay tracked in the drop folder
            if parts.disk.state != before:
                self._on_status()  # say at once that ingestion stopped or resumed
            if not held:
                self._ingest(parts.watcher.complete_files)

    def _ingest(self, complete_files: Callable[[], list[Path]]) -> None:
        """Ingest complete files in groups, handing each group's journaled images to the verifier
        as it comes (a later group's failure must not hold them back); first, after a full disk,
        what the failure left in staging.

        Files not taken because the disk filled up go back to the watcher, so they are tried
        again once there is space instead of waiting in the drop folder for a restart.
        """
        paths: list[Path] = []
        try:
            if self._restage:
                self._hand_on(self.parts.ingestor.recover_staging())
                self._restage = False
            paths = complete_files()
            for outcomes in self.parts.ingestor.ingest_groups(paths):
                self._hand_on(outcomes)
        except Exception as exc:
            for path in paths:
                if path.exists() or path.is_symlink():
                    self.parts.watcher.tracker.touch(path)
            if not disk_full(exc):
                raise
            self.disk_full(exc)

    def _inspected(self, checked: CheckedImage, data: bytes) -> None:
        """An image inspected, on its way into the journal: the judge may detect it already."""
        if self.parts.judge.offer(checked.image_id, data, checked.ext):
            self.judge.poke()

    def _hand_on(self, outcomes: list[IngestOutcome]) -> None:
        """Journaled images to the verifier; files ingest could not read back to the watcher."""
        self.parts.verifier.submit([o.image_id for o in outcomes if o.image_id is not None])
        self.parts.watcher.left_in_place([o.path for o in outcomes if o.skipped])

    def _unless_disk_full(self, step: Callable[[], None]) -> Callable[[], None]:
        """``step``, with a full disk reported (``disk_full``) and retried at the next poke or
        poll instead of ending the stage: the journal rolled the step's transaction back."""
        def guarded() -> None:
            try:
                step()
            except Exception as exc:
                if not disk_full(exc):
                    raise
                self.disk_full(exc)
        return guarded

    def disk_full(self, exc: BaseException) -> None:
        """The work folder's file system is full, whatever the guard's thresholds said (from any
        thread). The step that hit it changed nothing (SQLite rolled its transaction back; a file
        that could not be moved stayed where it was), and every step is retried: hold new images
        in the drop folder, say so on the status topic, and pick everything up once space returns."""
        with self.disk_lock:
            news = self.parts.disk.full(exc)
        self._restage = True
        if news:
            self._on_status()

    # --- judge and send ------------------------------------------------------------------------
    def _judge_step(self) -> None:
        with self._judge_lock:
            server = self.parts.detector_server
            models = server.models()
            changed = self.parts.judge.step(time.monotonic())
            if changed or server.models() != models:
                self._on_status()  # say at once where images are judged now, and by which model

    def _verdict(self) -> None:
        """A verdict and its messages are in the journal's outbox: the first goes on the wire from
        here, and the outbox stage waits for its PUBACK and sends the rest, while the judge goes
        on to the next image."""
        self.parts.alerter.outbox.send_next(self.parts.publisher)
        self.outbox.poke()

    def _send_step(self) -> None:
        """Hand off stored results, send the outbox, and only then retire the images' files: the
        PLC's message does not wait for the file system."""
        parts = self.parts
        parts.alerter.queue_results()
        try:
            while parts.alerter.outbox.drain(parts.publisher, budget=SEND_BUDGET_SECONDS):
                if self.outbox.stopping:
                    return
        finally:
            parts.alerter.retire_handed_off()
