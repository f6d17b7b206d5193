"""The client of the local detector: ``batchsight serve`` (or any server with its contract).

The contract is the SageMaker inference container's: ``GET /ping`` answers 200 when the
model is ready (503 with a reason when not), ``POST /invocations`` takes the image bytes and
answers the DetectAnomalyResult shape (IsAnomalous, Confidence). Talking HTTP over loopback
keeps the edge program free of numpy and of the detector's code, and lets a plant point
``inference.endpoint`` at any server that keeps the contract (a GPU box on the line, say).

Two kinds of failure, handled differently by edge_judge.py:
``DetectorUnavailable`` (no answer, a timeout, a 5xx): the detector is unhealthy, every image
goes to the cloud until it recovers; ``ImageRefused`` (a 4xx): only this image goes to the cloud.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}


class DetectorUnavailable(RuntimeError):
    """The detector cannot judge anything right now; the message says why."""


class DetectorNotListening(DetectorUnavailable):
    """Nothing listens at the endpoint (yet: a server just started is still importing)."""


class DetectorUnhealthy(DetectorUnavailable):
    """The server answered, with a 5xx: it runs but cannot judge (its model is unusable, say)."""


class ImageRefused(ValueError):
    """The detector answered, but refuses this one image; the message says why."""


class LocalDetector:
    def __init__(self, endpoint: str, *, timeout: float) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout

    def check(self, *, timeout: float | None = None) -> dict[str, Any]:
        """``/ping``'s answer when healthy (it may name the model: "model", "version"); else raise
        DetectorUnavailable saying why."""
        try:
            return self._call(urllib.request.Request(f"{self.endpoint}/ping"), timeout=timeout)
        except ImageRefused as exc:  # a 4xx on /ping: not our server, or a wrong endpoint path
            raise DetectorUnavailable(f"detector at {self.endpoint} does not answer /ping: {exc}") from exc

    def detect(self, image: bytes, ext: str) -> dict[str, Any]:
        """The detector's verdict on one image (IsAnomalous, Confidence, Model: Name, Version)."""
        request = urllib.request.Request(f"{self.endpoint}/invocations", data=image, method="POST",
                                         headers={"Content-Type": CONTENT_TYPES.get(ext, "image/jpeg")})
        answer = self._call(request)
        if not isinstance(answer.get("IsAnomalous"), bool) or not isinstance(answer.get("Confidence"), (int, float)):
            raise DetectorUnavailable(f"detector at {self.endpoint} answered without IsAnomalous/Confidence: "
                                      f"{str(answer)[:200]}")
        return answer

    def _call(self, request: urllib.request.Request, *, timeout: float | None = None) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:  # noqa: S310 - http(s) URL checked in config
                return _json(response.read())
        except urllib.error.HTTPError as exc:
            reason = _reason(exc.read()) or exc.reason
            if 400 <= exc.code < 500:
                raise ImageRefused(f"detector refused the image ({exc.code}): {reason}") from exc
            raise DetectorUnhealthy(f"detector at {self.endpoint} answered {exc.code}: {reason}") from exc
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            cause = getattr(exc, "reason", exc)
            unavailable = DetectorNotListening if isinstance(cause, ConnectionRefusedError) else DetectorUnavailable
            raise unavailable(f"detector at {self.endpoint} not reachable: {cause}") from exc


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise DetectorUnavailable(f"detector answered something that is not a JSON object: {raw[:200]!r}")
    return value


def _reason(raw: bytes) -> str:
    try:
        body = json.loads(raw)
    except ValueError:
        return raw[:200].decode("utf-8", "replace")
    return str(body.get("reason") or body.get("error") or "") if isinstance(body, dict) else ""
