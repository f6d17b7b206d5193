"""The component: the event path (event_path.py) and the main loop beside it.

An image travels the event path: the watcher hears a file closed whole, and the ingest, pixel
verifier, judge and outbox stages each wake the next as soon as their step is recorded in the
journal, so a verdict made on the gateway reaches MQTT without waiting for a tick. The main loop
does what has its own schedule, every TICK_SECONDS or when woken: batches, the cloud (submit,
result polls), stored cloud results to the outbox, operator feedback, housekeeping, the status.
Each journal transition is recorded by one stage or by the loop, after its side effect. Cloud
and broker failures back off and retry; they never stop ingestion or edge verdicts, so images
keep spooling and the PLC keeps hearing while the line runs.

Two clocks: the wall clock for what is compared with times the journal keeps (batch ages,
result timeouts, retention), the monotonic clock for the loop's own timers (result polls, the
status heartbeat, backoffs, housekeeping). A gateway's clock is set back by NTP after a boot
without a real-time clock, or by hand; a wall-clock timer would then stall for as long.

A configuration update is applied by the loop too, between two ticks: one from Greengrass
arrives on the IPC thread (``request_config``), and SIGHUP asks the loop to read the
configuration file again (off Greengrass), so no part ever changes its settings in the middle
of a step (a model swap, say: detector_server.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

from batchsight import alerts, status_file, wiring
from batchsight.batcher import new_batch_id
from batchsight.cloud_errors import refusal
from batchsight.config import Config, ConfigError, load_config
from batchsight.greengrass import GreengrassIpc
from batchsight.event_path import EventPath
from batchsight.housekeeping import disk_full
from batchsight.live_config import reloadable
from batchsight.plant_state import Alarm
from batchsight.publishers import Publisher, PublishError

# Made by the wiring; still importable from here, where bench/edge.py and tests look for them.
from batchsight.wiring import aws_clients as aws_clients
from batchsight.wiring import build_publisher as build_publisher

log = logging.getLogger(__name__)
TICK_SECONDS = 0.2
STATUS_EVERY_SECONDS = 10.0
HOUSEKEEPING_EVERY_SECONDS = 60.0
FEEDBACK_BACKLOG = 1000


class Backoff:
    """Exponential backoff with full jitter, for calls botocore's own retries gave up on."""

    def __init__(self, base: float = 1.0, cap: float = 60.0) -> None:
        self.base, self.cap = base, cap
        self.failures = 0
        self.next_try = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_try

    def failed(self, now: float) -> None:
        self.failures += 1
        self.next_try = now + random.uniform(0, min(self.cap, self.base * 2 ** self.failures))

    def succeeded(self) -> None:
        self.failures, self.next_try = 0, 0.0


class Component:
    """The main loop over the parts ``wiring.build`` connects. Adapters not handed in (the
    publisher, the AWS clients) are the ones the wiring chooses for this device: Greengrass
    local pub/sub when ``ipc`` is given, else a direct MQTT client."""

    def __init__(self, config: Config, *, ipc: GreengrassIpc | None = None, publisher: Publisher | None = None,
                 clients: dict[str, Any] | None = None, config_file: Path | None = None) -> None:
        self.config = config
        self.config_file = config_file  # read again on SIGHUP
        self._pending_config: Config | None = None  # from another thread, applied by the loop
        self._reread = False
        self.wake = threading.Event()  # something for the main loop now: a batch to cut, a config, a stop
        self._pushed: queue.SimpleQueue[str] = queue.SimpleQueue()  # batches/executions seen hosting, for the loop
        parts = wiring.build(config, ipc=ipc, publisher=publisher, clients=clients,
                             on_validated=lambda: self.events.validated(), on_hosted=self._model_hosted)
        self.journal, self.publisher, self.watcher = parts.journal, parts.publisher, parts.watcher
        self.ingestor, self.verifier, self.policy = parts.ingestor, parts.verifier, parts.policy
        self.link, self.puller, self.alerter = parts.link, parts.puller, parts.alerter
        self.receiver = parts.receiver
        self.detector_server, self.judge, self.feedback = parts.detector_server, parts.judge, parts.feedback
        self.shadow = parts.shadow
        self.disk, self.housekeeper = parts.disk, parts.housekeeper
        self._reconfigurable = parts.reconfigurable()  # every part that holds settings: see apply_config
        self._failure: BaseException | None = None  # what ended a stage of the event path
        self._status_due = threading.Event()  # a stage saw a change the status topic shows
        self.events = EventPath(parts, on_status=self._status_now, on_failure=self._stage_failed,
                                wake_main=self.wake.set)
        self._answers: queue.Queue[bytes] = queue.Queue(maxsize=FEEDBACK_BACKLOG)
        self.publisher.subscribe(config.topic("feedback"), self._feedback_arrived)
        self.stop_event = threading.Event()
        self._cloud_backoff = Backoff()
        self._cloud_state = "ok"
        self._cloud_alarm: str | None = None  # an AWS refusal only a person can fix
        self._next_poll = 0.0
        self._next_status = 0.0
        self._next_housekeeping = 0.0

    def apply_config(self, new: Config) -> None:
        """Apply a configuration change without a restart where that is safe.

        Batching, alert thresholds, result polling, retention, disk limits and the drop folder's
        timings (ingest.stable_seconds, ingest.rescan_seconds) take effect at once, in every part
        that holds settings: the update goes to each one the wiring built (none is listed here).
        The settings in live_config.RESTART_SETTINGS (identity, folders, ingest.subfolders, AWS
        resources, the broker, the inference mode with its detector process) are fixed for the
        life of the process: Greengrass restarts the component when they change (its Run script
        embeds them), so here they are only reported.
        """
        applied, ignored = reloadable(self.config, new)
        if ignored:
            log.warning("settings that need a restart were not applied", extra={"settings": ignored})
        self.config = applied
        with self.events.paused():  # between two steps of the ingest and judge stages
            for part in self._reconfigurable:
                part.reconfigure(applied)
        logging.getLogger().setLevel(applied.log_level.upper())
        log.info("configuration updated", extra={"batch": dataclasses.asdict(applied.batch),
                                                 "model": applied.inference.model,
                                                 "shadow_model": applied.inference.shadow_model})

    def request_config(self, new: Config) -> None:
        """A validated configuration from another thread (a Greengrass deployment, over IPC): the
        loop applies it before its next tick."""
        self._pending_config = new
        self.wake.set()

    def _take_config(self) -> None:
        """Apply what arrived since the last tick: the file read again after SIGHUP, or an update."""
        if self._reread:
            self._reread = False
            self._read_config_file()
        pending, self._pending_config = self._pending_config, None
        if pending is not None:
            self.apply_config(pending)

    def _read_config_file(self) -> None:
        if self.config_file is None:
            log.warning("SIGHUP: there is no configuration file to read again (on Greengrass the configuration "
                        "comes over IPC with each deployment)")
            return
        log.info("SIGHUP: reading the configuration file again", extra={"path": str(self.config_file)})
        try:
            new = load_config(self.config_file)
        except ConfigError as exc:
            log.error("configuration file refused; keeping the current configuration", extra={"error": str(exc)})
            return
        self.apply_config(new)

    def _model_hosted(self, batch_id: str) -> None:
        """On the receiver's thread: a result was stored, or the pipeline announced a start of the
        model (``batch_id`` is then the execution's name); the loop hands off and follows now."""
        self._pushed.put(batch_id)
        self.wake.set()

    def _feedback_arrived(self, raw: bytes) -> None:
        """Called on the MQTT client's thread: hand over to the main loop, never block it."""
        try:
            self._answers.put_nowait(raw)
        except queue.Full:
            log.error("operator feedback dropped: too many unprocessed answers",
                      extra={"backlog": FEEDBACK_BACKLOG})

    def _answer_feedback(self) -> None:
        while True:
            try:
                raw = self._answers.get_nowait()
            except queue.Empty:
                return
            reply = self.feedback.handle(raw)
            try:
                self.publisher.publish(self.config.topic("feedback/response"), reply)
            except PublishError:
                log.warning("feedback reply not delivered", extra={"reply": reply})

    def run(self) -> None:
        self.publisher.connect()
        self.ingestor.recover_staging()  # files a crash left half-way, before new ones arrive
        self.alerter.retire_leftovers()  # files of images handed off just before a crash
        self.verifier.start()  # then every received image is in the spool
        self.events.start()
        self.watcher.start()
        self.receiver.start()  # results pushed to our own queue (results.push)
        log.info("batchsight running", extra={"device": self.config.device,
                                              "drop_folder": str(self.config.drop_folder)})
        try:
            while not self.stop_event.is_set():
                try:
                    self.tick(time.time(), time.monotonic())
                except Exception as exc:
                    if not disk_full(exc):
                        raise
                    self._disk_full(exc)
                self.wake.wait(TICK_SECONDS)
                self.wake.clear()
        finally:
            self._shutdown()
        if self._failure is not None:
            raise self._failure

    def _stage_failed(self, exc: BaseException) -> None:
        """A stage of the event path failed (not a full disk: that is retried): stop, as a failing
        main loop does; run() raises it, and Greengrass restarts the component."""
        log.error("event path failed; stopping", extra={"error": repr(exc)}, exc_info=exc)
        self._failure = self._failure or exc
        self.stop_event.set()
        self.wake.set()

    def _status_now(self) -> None:
        """From any thread: publish the status at the main loop's next pass, and make that now."""
        self._status_due.set()
        self.wake.set()

    def tick(self, now: float, mono: float) -> None:
        """One pass of the main loop at wall time ``now`` and monotonic time ``mono``."""
        self._take_config()
        if self._status_due.is_set():
            self._status_due.clear()
            self._next_status = 0.0  # ingestion stopped or resumed, or images are judged elsewhere now
        if self.config.inference.mode != "cloud":
            self.shadow.publish_due(mono)
        waiting, oldest = self.journal.waiting()
        trigger = self.policy.due(waiting=waiting, oldest_seen=oldest, now=now)
        if trigger:
            batch_id = new_batch_id(self.config.device, now)
            count = self.journal.cut_batch(batch_id, max_images=self.config.batch.max_images)
            self.policy.cut(batch_id, trigger, now)
            log.info("batch cut", extra={"batch_id": batch_id, "images": count, "trigger": trigger})
        if self._cloud_backoff.ready(mono):
            self._cloud_step(mono)
        self.alerter.hand_off()  # results the cloud stored, and batch summaries
        self.events.handed_off()  # the outbox stage sends whatever waits (and looks again while the broker is down)
        self._answer_feedback()
        if mono >= self._next_housekeeping:
            self.housekeeper.resubmit_overdue(now)
            self.housekeeper.prune(now)
            self._next_housekeeping = mono + HOUSEKEEPING_EVERY_SECONDS
        if mono >= self._next_status:
            self._publish_status("running")
            self._next_status = mono + STATUS_EVERY_SECONDS

    def _disk_full(self, exc: BaseException) -> None:
        """The main loop's step hit a full disk (a batch, a result): as for ingest (event_path)."""
        self.events.disk_full(exc)
        mono = time.monotonic()
        if self._status_due.is_set() or mono >= self._next_status:  # the failed tick did not reach its status
            self._publish_status("running")
            self._next_status = mono + STATUS_EVERY_SECONDS

    def _cloud_step(self, mono: float) -> None:
        try:
            for batch_id in self.journal.open_batches():
                self.link.submit(batch_id)
            self.feedback.upload_pending()
            if mono >= self._next_poll:
                for batch_id in set(self.puller.poll(mono)):
                    self.policy.model_hosted(batch_id)
                self._next_poll = mono + self.config.results.poll_seconds
            while not self._pushed.empty():
                self.policy.model_hosted(self._pushed.get_nowait())
        except Exception as exc:  # noqa: BLE001 - any cloud failure: keep spooling, retry later
            self._cloud_backoff.failed(mono)
            if disk_full(exc):
                raise  # the journal could not record a step: not the cloud's fault (see run)
            alarm = refusal(exc)
            if self._cloud_state == "ok" or alarm != self._cloud_alarm:
                self._next_status = 0.0  # say at once that the cloud is unreachable, and why
            self._cloud_state, self._cloud_alarm = "unreachable", alarm
            log.warning("cloud step failed; images keep spooling", extra={
                "error": str(exc), "retry_in_s": round(self._cloud_backoff.next_try - mono, 1)})
            return
        if self._cloud_state != "ok":
            log.info("cloud reachable again")
            self._next_status = 0.0
        self._cloud_state, self._cloud_alarm = "ok", None
        self._cloud_backoff.succeeded()

    def _alarms(self, judging: str, problem: str) -> list[tuple[Alarm, str]]:
        """Every condition a person must act on, coded where it is raised (plant_state.py)."""
        edge = self.config.inference.mode != "cloud"
        raised = [(Alarm.DISK, self.disk.alarm), (Alarm.RESULTS_OVERDUE, self.housekeeper.alarm),
                  (Alarm.NOT_WATCHED, self.watcher.alarm), (Alarm.CLOUD_REFUSES, self._cloud_alarm)]
        if judging == "cloud" and problem:
            raised.append((Alarm.DETECTOR_UNAVAILABLE,
                           f"local detector unavailable, images go to the cloud: {problem}"))
        raised += [(Alarm.MODEL_NOT_USED, text) for text in (self.detector_server.alarms() if edge else [])]
        return [(code, text[:500]) for code, text in raised if text]

    def _publish_status(self, state: str) -> None:
        judging, problem = self.judge.status()
        alarms = self._alarms(judging, problem)
        edge = self.config.inference.mode != "cloud"
        counts = {**self.journal.counts(), **self.journal.judgements()}
        payload = alerts.status_payload(self.config, state=state, counts=counts, cloud=self._cloud_state,
                                        alarms=[text for _, text in alarms],
                                        alarm_codes=[int(code) for code, _ in alarms], judging=judging,
                                        detector_problem=problem,
                                        models=self.detector_server.models() if edge else None)
        # the status is refreshed every few seconds; a missed one is not a loss
        with contextlib.suppress(PublishError):
            self.publisher.publish(self.config.topic("status"), payload, retain=True)
        with contextlib.suppress(OSError):  # for `batchsight status`, which must not need the broker
            status_file.write(self.config.status_path, payload)

    def _shutdown(self) -> None:
        self.receiver.stop()
        log.info("result traffic", extra={"receives": self.receiver.receives, "list_pages": self.puller.lists})
        self.events.ingest.stop()
        self.watcher.stop()
        self.verifier.stop()
        self.events.stop()
        self.detector_server.stop()
        self._publish_status("stopped")
        self.publisher.close()
        self.feedback.close()
        self.journal.close()
        log.info("batchsight stopped")

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: object) -> None:
            log.info("stopping on signal", extra={"signal": signal.Signals(signum).name})
            self.stop_event.set()
            self.wake.set()

        def reread(_signum: int, _frame: object) -> None:
            self._reread = True  # the loop reads the file: a handler must not do the work itself
            self.wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reread)
