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

import http.client
import json
import socket
import threading
from typing import Any
from urllib.parse import urlsplit

CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
# What a kept-alive connection the server closed meanwhile raises at its next use (the child was
# restarted, or it dropped an idle connection): the request is sent again once, on a new connection.
DROPPED = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError,
           ConnectionAbortedError)


class DetectorUnavailable(RuntimeError):
    """The detector cannot judge anything right now; the message says why."""


class DetectorNotListening(DetectorUnavailable):
    """Nothing listens at the endpoint (yet: a server just started is still importing)."""


class DetectorUnhealthy(DetectorUnavailable):
    """The server answered, with a 5xx: it runs but cannot judge (its model is unusable, say)."""


class ImageRefused(ValueError):
    """The detector answered, but refuses this one image; the message says why."""


class LocalDetector:
    """One HTTP/1.1 connection per calling thread, kept open between calls: a new TCP connection
    and a new server thread for every image cost some 2 ms of a verdict that takes a few."""

    def __init__(self, endpoint: str, *, timeout: float) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.timeout = timeout
        url = urlsplit(self.endpoint)
        self._https, self._host, self._port = url.scheme == "https", url.hostname or "", url.port
        self._base = url.path
        self._local = threading.local()

    def check(self, *, timeout: float | None = None) -> dict[str, Any]:
        """``/ping``'s answer when healthy (it may name the model: "model", "version"); else raise
        DetectorUnavailable saying why."""
        try:
            return self._call("GET", "/ping", None, {}, timeout=timeout)
        except ImageRefused as exc:  # a 4xx on /ping: not our server, or a wrong endpoint path
            raise DetectorUnavailable(f"detector at {self.endpoint} does not answer /ping: {exc}") from exc

    def detect(self, image: bytes, ext: str) -> dict[str, Any]:
        """The detector's verdict on one image (IsAnomalous, Confidence, Model: Name, Version)."""
        answer = self._call("POST", "/invocations", image, {"Content-Type": CONTENT_TYPES.get(ext, "image/jpeg")})
        if not isinstance(answer.get("IsAnomalous"), bool) or not isinstance(answer.get("Confidence"), (int, float)):
            raise DetectorUnavailable(f"detector at {self.endpoint} answered without IsAnomalous/Confidence: "
                                      f"{str(answer)[:200]}")
        return answer

    def close(self) -> None:
        """Close this thread's connection (the others close with their threads, or at exit)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _call(self, method: str, path: str, body: bytes | None, headers: dict[str, str], *,
              timeout: float | None = None) -> dict[str, Any]:
        try:
            status, raw = self._exchange(method, path, body, headers, timeout or self.timeout)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()  # whatever state it is in, the next call starts on a new connection
            unavailable = DetectorNotListening if isinstance(exc, ConnectionRefusedError) else DetectorUnavailable
            raise unavailable(f"detector at {self.endpoint} not reachable: {_cause(exc)}") from exc
        if 400 <= status < 500:
            raise ImageRefused(f"detector refused the image ({status}): {_reason(raw) or _phrase(status)}")
        if status >= 500:
            raise DetectorUnhealthy(f"detector at {self.endpoint} answered {status}: {_reason(raw) or _phrase(status)}")
        return _json(raw)

    def _exchange(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
                  timeout: float) -> tuple[int, bytes]:
        """(status, body) over this thread's connection; a connection kept from an earlier call that
        turns out dropped is replaced once (a new one that fails is the detector's failure)."""
        reused = getattr(self._local, "connection", None) is not None
        try:
            return self._once(method, path, body, headers, timeout)
        except DROPPED:
            if not reused:
                raise
            self.close()
            return self._once(method, path, body, headers, timeout)

    def _once(self, method: str, path: str, body: bytes | None, headers: dict[str, str],
              timeout: float) -> tuple[int, bytes]:
        connection = self._connection(timeout)
        connection.request(method, self._base + path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        if response.will_close:
            self.close()
        return response.status, raw

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        """This thread's connection, with ``timeout`` for the call to come."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=timeout)
            self._local.connection = connection
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        return connection


def _cause(exc: BaseException) -> str:
    """Why a call failed, as urllib said it (``timed out``, ``[Errno 111] Connection refused``)."""
    if isinstance(exc, socket.timeout | TimeoutError) and not str(exc):
        return "timed out"
    return str(exc) or type(exc).__name__


def _phrase(status: int) -> str:
    return http.client.responses.get(status, str(status))


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
