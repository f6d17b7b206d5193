"""Edge inference modes: who judges each image, the local detector or the cloud batch.

``inference.mode``:
- ``cloud``: every image goes to the batch pipeline (ingest routes it there at once);
- ``edge``: the local detector judges, the alert goes out at once, and the image never
  leaves the gateway; the cloud judges only while the detector is missing or unhealthy;
- ``edge-first``: as ``edge``, but images whose anomaly probability lies in the uncertain
  band, plus an audit sample, also go to the cloud; when the cloud disagrees the alerter
  publishes a correction (alerter.py).

Falling back is automatic and said out loud: when the detector cannot be reached, errors or
has no usable model, every waiting image goes to the cloud, the status topic reports
``judging: cloud`` with the reason (and an alarm), and the detector is tried again every
``inference.retry_seconds``. An image the detector refuses (a 4xx) goes to the cloud alone.

The route is a journal column set once per image, so a crash repeats at most one local
detection and never sends an image both ways by accident. Each verdict records the model that
gave it (``model.name``, ``model.version``); a model swap (detector_server.py) takes place
between two images, so every image is judged by exactly one version.

With a shadow model (``inference.shadow_model``) each image is judged by it too, right after
the current model; the two verdicts are compared and counted in the journal (shadow.py
publishes the figures), and the shadow's verdict goes nowhere else: no alert, no result. A
shadow that fails never holds an image back.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchsight.alerter import Alerter
from batchsight.alerts import utc_now
from batchsight.config import Config
from batchsight.detect_ahead import DetectAhead, Offered
from batchsight.detector_server import DetectorServer
from batchsight.journal import ImageRecord, Journal, Route
from batchsight.live_config import Configured
from batchsight.journal_shadow import ShadowPair
from batchsight.local_detector import DetectorNotListening, DetectorUnavailable, ImageRefused, LocalDetector
from batchsight.model_package import ModelIdentity

log = logging.getLogger(__name__)
BUDGET_SECONDS = 0.5          # per tick, so ingestion and alerts keep flowing under a backlog
BATCH_LIMIT = 50


def anomaly_probability(result: dict[str, Any]) -> float:
    """Confidence is in the verdict; the band is on "anomalous", so fold the two together."""
    confidence = float(result["Confidence"])
    return confidence if result["IsAnomalous"] else 1.0 - confidence


def audited(image_id: str, fraction: float) -> bool:
    """A deterministic sample by image id (a SHA-256): the same image is always in or out."""
    return int(image_id[:8], 16) < fraction * 16 ** 8


class EdgeJudge(Configured):
    def __init__(self, config: Config, journal: Journal, alerter: Alerter, *,
                 detector: LocalDetector, server: DetectorServer) -> None:
        self.config = config
        self.journal = journal
        self.alerter = alerter
        self.detector = detector
        self.server = server
        self.problem = "not checked yet"
        self._next_check = 0.0
        self._loading = False
        self.ahead = DetectAhead()
        self.on_verdict: Callable[[], None] = lambda: None  # after each verdict is queued: send it now

    @property
    def judging(self) -> str:
        """Where newly arriving images go now: "edge", "cloud", or "starting" (they wait)."""
        if self.config.inference.mode == "cloud":
            return "cloud"
        if not self.problem:
            return "edge"
        return "starting" if self._next_check == 0.0 or self._loading else "cloud"

    def status(self) -> tuple[str, str]:
        """(judging, the detector's problem when it matters, else "") for the status topic."""
        judging = self.judging
        return judging, self.problem if judging != "edge" and self.config.inference.mode != "cloud" else ""

    def _client(self) -> LocalDetector:
        """The current model's server: the component's own, or the plant's at inference.endpoint."""
        return self.server.client or self.detector

    def step(self, now: float) -> bool:
        """Judge or route what waits; True when ``judging`` changed (the status should say so).
        ``now`` is the monotonic clock: it times the detector's checks."""
        before = self.judging
        if self.config.inference.mode == "cloud":
            if self._next_check == 0.0:  # once: images an earlier run in an edge mode left waiting
                self.journal.route_to_cloud()
                self._next_check = now
            return before != self.judging
        switched = self.server.step(now)
        if switched is not None:  # a new model answered /ping and judges from the next image on
            self.problem, self._loading = "", False
            self._next_check = now + self.config.inference.retry_seconds
        if self.problem and not self._recovered(now):
            if not self._loading:
                self.journal.route_to_cloud()
        else:
            self._judge_waiting()
        return before != self.judging

    def _recovered(self, now: float) -> bool:
        """Check the detector when due; True when it is healthy now."""
        if now < self._next_check:
            return False
        self._loading = False
        try:
            problem = self.server.ensure_running()
            if problem:
                raise DetectorUnavailable(problem)
            self._client().check()
        except DetectorNotListening as exc:
            if self.server.starting():
                self._loading = True  # still importing and loading: images wait, look again soon
                self._next_check = now + 0.5
                return False
            return self._unhealthy(str(exc), now)
        except DetectorUnavailable as exc:
            return self._unhealthy(str(exc), now)
        self._next_check = now + self.config.inference.retry_seconds
        if self.problem:
            log.info("local detector healthy: judging images at the edge",
                     extra={"endpoint": self._client().endpoint, "before": self.problem})
        self.problem = ""
        return True

    def _unhealthy(self, problem: str, now: float) -> bool:
        """Record the problem (logged once per new problem); False, for ``_recovered``."""
        if problem != self.problem:
            log.error("local detector unavailable: images go to the cloud until it recovers",
                      extra={"problem": problem, "retry_in_s": self.config.inference.retry_seconds})
        self.problem = problem
        self._next_check = now + self.config.inference.retry_seconds
        return False

    def offer(self, image_id: str, data: bytes, ext: str) -> bool:
        """From ingest (its thread), an image just inspected: True when it is kept to be detected
        ahead (detect_ahead.py), the judge's thread then to be poked."""
        return self.judging == "edge" and self.ahead.offer(image_id, data, ext)

    def _judge_waiting(self) -> None:
        """Judge the validated images waiting; when none is left, detect ahead what ingest offered,
        and judge again, so an image validated meanwhile goes out at once."""
        deadline = time.monotonic() + BUDGET_SECONDS
        client, identity, shadow = self._client(), self.server.identity, self.server.shadow_client()
        while self._judge_validated(client, identity, shadow, deadline) and time.monotonic() < deadline:
            offered = self.ahead.next()
            if offered is None or not self._detect_ahead(offered, client, identity):
                return

    def _judge_validated(self, client: LocalDetector, identity: ModelIdentity | None,
                         shadow: tuple[LocalDetector, ModelIdentity] | None, deadline: float) -> bool:
        """Judge what is validated and not routed yet; False when the detector failed or time is up."""
        for image in self.journal.unrouted(limit=BATCH_LIMIT):
            if time.monotonic() > deadline:
                return False
            answer = self.ahead.take(image.image_id, client, identity)
            try:
                data = Path(image.path).read_bytes() if answer is None or shadow is not None else b""
                if answer is None:
                    answer = client.detect(data, image.ext)
                judged_by = _judged_by(answer, identity)
            except ImageRefused as exc:
                log.warning("local detector refused an image; the cloud will judge it",
                            extra={"image_id": image.image_id, "error": str(exc)})
                self.journal.route_to_cloud([image.image_id])
                continue
            except OSError as exc:
                log.error("image file unreadable for the local detector; the cloud will try it",
                          extra={"image_id": image.image_id, "error": str(exc)})
                self.journal.route_to_cloud([image.image_id])
                continue
            except DetectorUnavailable as exc:
                self._failed(str(exc))
                return False
            if shadow is not None and not self._compare(image, data, answer, judged_by, *shadow):
                shadow = None  # it failed: the rest go without it
            self._record(image, answer, judged_by)
            self.on_verdict()
        return True

    def _detect_ahead(self, offered: Offered, client: LocalDetector, identity: ModelIdentity | None) -> bool:
        """Ask the detector about an image the journal is still taking in; keep the answer. A
        refusal is left for the judge to meet again; False when the detector failed."""
        try:
            answer = client.detect(offered.data, offered.ext)
            _judged_by(answer, identity)
        except ImageRefused:
            return True
        except DetectorUnavailable as exc:
            self._failed(str(exc))
            return False
        self.ahead.keep(offered, client, identity, answer)
        return True

    def _failed(self, problem: str) -> None:
        """The detector failed: everything waiting goes to the cloud until it recovers."""
        self._unhealthy(problem, time.monotonic())
        self.ahead.clear()
        self.journal.route_to_cloud()

    def _compare(self, image: ImageRecord, data: bytes, answer: dict[str, Any], judged_by: ModelIdentity,
                 client: LocalDetector, shadow: ModelIdentity) -> bool:
        """The shadow's verdict on the same image, counted against the current one's; False when
        the shadow cannot judge now (it is restarted later; the image goes on without it)."""
        try:
            verdict = client.detect(data, image.ext)
        except ImageRefused:
            return True  # this image only; the current model's verdict stands
        except DetectorUnavailable as exc:
            self.server.shadow_failed(str(exc))
            return False
        pair = ShadowPair(judged_by.name, judged_by.version, shadow.name, shadow.version)
        self.journal.record_shadow(image.image_id, pair, anomalous=bool(answer["IsAnomalous"]),
                                   shadow_anomalous=bool(verdict["IsAnomalous"]))
        return True

    def _record(self, image: ImageRecord, answer: dict[str, Any], judged_by: ModelIdentity) -> None:
        result: dict[str, Any] = {k: answer[k] for k in ("IsAnomalous", "Confidence", "Anomalies")
                                  if k in answer}
        document = {"v": 1, "image_id": image.image_id, "judged_by": "edge", "processed_at": utc_now(),
                    "model": {"name": judged_by.name, "version": judged_by.version}, "result": result}
        settings = self.config.inference
        probability = anomaly_probability(result)
        uncertain = settings.uncertain_low <= probability <= settings.uncertain_high
        if settings.mode == "edge-first" and (uncertain or audited(image.image_id, settings.audit_fraction)):
            self.alerter.publish_provisional(image, document)
            log.info("local verdict published; the cloud checks it",
                     extra={"image_id": image.image_id, "anomaly_probability": round(probability, 4),
                            "why": "uncertain" if uncertain else "audit sample"})
            return
        self.alerter.publish_verdict(image, route=Route.EDGE.value, is_anomalous=bool(result["IsAnomalous"]),
                                     confidence=float(result["Confidence"]), result_json=json.dumps(document))


def _judged_by(answer: dict[str, Any], identity: ModelIdentity | None) -> ModelIdentity:
    """The model that gave ``answer``: the component's own server's (which must say the same
    version when it names one), or what the plant's server at inference.endpoint names."""
    model = answer.get("Model")
    named: dict[str, Any] = model if isinstance(model, dict) else {}
    if identity is None:
        return ModelIdentity(str(named.get("Name") or "local"), str(named.get("Version") or ""))
    if named.get("Version") not in (None, identity.version):
        raise DetectorUnavailable(f"the detector answered with model {named.get('Name')} version "
                                  f"{named.get('Version')}, not {identity}: another server holds its port")
    return identity
