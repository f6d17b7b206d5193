"""The local detector processes the component runs when ``inference.model`` names a model: the
current one, the next one while a new model is swapped in, and the shadow.

On a gateway the model arrives as a Greengrass artifact (a file or a package folder) or is
fetched from S3 (a package, or a plain object), into the work folder (model_package.py). The
component runs ``batchsight serve`` on it as a child process of its own (detector_process.py):
the detector's numpy work never shares the component's memory or GIL, a crash in it cannot take
the journal down, and the component talks to it only through the HTTP contract
(local_detector.py). The current server is restarted when it dies; edge_judge.py decides when
to try.

A swap (the configuration names another model: a Greengrass deployment of ``inference.model``
over IPC, or SIGHUP after editing the file) never stops judging: the new model is prepared and
served beside the current one, on another port, while the current one goes on judging; once it
answers /ping, the next image goes to it and the old server is stopped. Detection is synchronous
on the main loop, and ``step`` runs between two images, so an image whose detection has begun
finishes on the old model, and each image is judged by exactly one model, whose name and
version its result records. A new model that is refused (a checksum that does not match, a
model the detector cannot load) leaves the current one judging and raises an alarm.

The shadow (``inference.shadow_model``, the edge modes) is one more server, judging every image
beside the current one for comparison only (edge_judge.py, shadow.py). When the configuration
promotes it (names it as ``inference.model``), its running server becomes the current one.
"""
from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from batchsight.config import Config
from batchsight.detector_process import SERVER_MODULE as SERVER_MODULE
from batchsight.detector_process import ModelProcess, free_port
from batchsight.live_config import Configured
from batchsight.local_detector import LocalDetector
from batchsight.model_package import ModelIdentity

log = logging.getLogger(__name__)
_ALARM_LIMIT = 500  # the status schema's limit on one alarm


class DetectorServer(Configured):
    def __init__(self, config: Config, *, s3: Any) -> None:
        self.config = config
        self.s3 = s3
        self.current: ModelProcess | None = None
        self.incoming: ModelProcess | None = None   # the next model, while a swap prepares it
        self.shadow: ModelProcess | None = None

    def reconfigure(self, config: Config) -> None:
        """The settings for the servers to come; the running ones take the new detection timeout."""
        self.config = config
        for model in (self.current, self.incoming, self.shadow):
            if model is not None:
                model.config, model.client.timeout = config, config.inference.timeout_seconds

    @property
    def wanted(self) -> bool:
        return bool(self.config.inference.model) and self.config.inference.mode != "cloud"

    @property
    def process(self) -> Any:
        """The current server's process (None when there is none)."""
        return self.current.process if self.current else None

    @property
    def client(self) -> LocalDetector | None:
        """The client of the current server; None when the component runs none (an endpoint of the plant's)."""
        return self.current.client if self.wanted and self.current else None

    @property
    def identity(self) -> ModelIdentity | None:
        return self.current.identity if self.wanted and self.current else None

    def starting(self) -> bool:
        """True while the current model is prepared, or its new server may still be loading it."""
        return self.current is not None and self.current.starting()

    def _new(self, source: str, role: str, port: int | None = None) -> ModelProcess:
        log.info("preparing a model", extra={"role": role, "source": source})
        return ModelProcess(source, role=role, port=port or free_port(), config=self.config, s3=self.s3)

    def ensure_running(self) -> str:
        """Start (or restart) the current server when needed; empty, or why it cannot run."""
        if not self.wanted:
            return ""
        if self.current is None:
            if importlib.util.find_spec(SERVER_MODULE.rsplit(".", 1)[0]) is None:
                return ("the local detector is not installed on this gateway (batchsight_detector); "
                        "install detector/requirements.txt")
            port = urlsplit(self.config.inference.endpoint).port
            self.current = self._new(self.config.inference.model, "current", port)
        current = self.current
        if current.alive():
            return ""
        died = current.exited()
        if died:
            return died  # said now; started again at the next check
        state = current.prepared()
        if state is None:
            return ""  # still fetched: starting() says so
        if state is False:
            current.retry()  # a refused model is not: it waits for a new configuration
            return current.problem
        current.start()
        return ""

    def step(self, now: float) -> ModelIdentity | None:
        """Drive a swap and the shadow a step; the new model's identity when the current one was
        just replaced (the next image goes to it). ``now`` is the monotonic clock."""
        if not self.wanted:
            self._retire("incoming", "shadow", "current")
            return None
        switched = self._swap(now)
        self._drive_shadow(now)
        return switched

    def _swap(self, now: float) -> ModelIdentity | None:
        wanted, current = self.config.inference.model, self.current
        if current is None:
            return None  # ensure_running starts the first
        if current.source == wanted:
            self._retire("incoming")  # the configuration went back before the swap finished
            return None
        incoming = self.incoming
        if incoming is None or incoming.source != wanted:
            self._retire("incoming")
            shadow = self.shadow
            if shadow is not None and shadow.source == wanted and shadow.ready and shadow.alive():
                incoming, self.shadow = shadow, None  # promoted: its server is running already
                incoming.role = "current"
            else:
                incoming = self._new(wanted, "next")
            self.incoming = incoming
        if not self._drive(incoming, now):
            return None
        old, self.current, self.incoming = current, incoming, None
        incoming.role = "current"
        log.info("model switched: the next image is judged by the new model",
                 extra={"model": str(incoming.identity), "before": old.describe(), "port": incoming.port})
        old.stop()  # nothing is in flight on it: detection runs on this thread, between steps
        return incoming.identity

    def _drive_shadow(self, now: float) -> None:
        inference = self.config.inference
        source = inference.shadow_model if inference.shadow_model != inference.model else ""
        if self.shadow is not None and self.shadow.source != source:
            self._retire("shadow")
        if source and self.shadow is None:
            self.shadow = self._new(source, "shadow")
        if self.shadow is not None:
            self._drive(self.shadow, now)

    def _drive(self, model: ModelProcess, now: float) -> bool:
        """Advance a model served beside the current one; True once it answers /ping."""
        if model.ready and model.alive():
            return True
        if model.refused or now < model.next_try:
            return False
        died = model.exited()
        if died:
            model.problem = died
        state = model.prepared() if not died else False
        if state is None:
            return False
        if state is False:
            model.retry()
            model.next_try = now + self.config.inference.retry_seconds
            return False
        if model.process is None:
            if model.started_at:
                model.move(free_port())  # a restart: its port may be what failed (taken since it was chosen)
            model.start()
        healthy = model.check()
        if healthy is False and not model.refused:
            model.next_try = now + self.config.inference.retry_seconds
        return bool(healthy)

    def shadow_client(self) -> tuple[LocalDetector, ModelIdentity] | None:
        """The shadow's client and identity while it is ready to judge; else None."""
        shadow = self.shadow
        if shadow is None or not shadow.ready or shadow.identity is None:
            return None
        return shadow.client, shadow.identity

    def shadow_failed(self, problem: str) -> None:
        """The shadow could not judge an image: stop it, and try it again after retry_seconds."""
        if self.shadow is not None:
            log.warning("shadow model failed; tried again later", extra={"problem": problem})
            self.shadow.stop()
            self.shadow.problem = problem
            self.shadow.next_try = time.monotonic() + self.config.inference.retry_seconds

    def models(self) -> dict[str, str]:
        """For the status topic: the current model and the shadow, by name and version."""
        current, shadow = self.identity, self.shadow.identity if self.shadow and self.wanted else None
        return {"model": current.name if current else "", "model_version": current.version if current else "",
                "shadow_model": shadow.name if shadow else "",
                "shadow_model_version": shadow.version if shadow else ""}

    def alarms(self) -> list[str]:
        """What a person must fix about a model beside the current one (the current one's problem
        is the judge's: it sends images to the cloud)."""
        found = []
        if self.incoming is not None and self.incoming.problem:
            keep = self.current.describe() if self.current else "the current model"
            found.append(f"new inference.model not used, {keep} goes on judging (or the cloud while it cannot): "
                         f"{self.incoming.problem} [inference.model: {self.incoming.source}]")
        if self.shadow is not None and self.shadow.problem:
            found.append(f"shadow model not running, no shadow figures: {self.shadow.problem} "
                         f"[inference.shadow_model: {self.shadow.source}]")
        return [alarm[:_ALARM_LIMIT] for alarm in found]

    def _retire(self, *roles: str) -> None:
        for role in roles:
            model = getattr(self, role)
            if model is not None:
                model.stop()
                setattr(self, role, None)

    def stop(self) -> None:
        self._retire("incoming", "shadow", "current")
