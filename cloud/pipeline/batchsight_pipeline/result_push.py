"""Push each stored result to its gateway's own SQS queue, so the gateway need not list S3.

A gateway creates its queue, ``{RESULT_QUEUE_PREFIX}-{device}``, when it starts; the drain
sends each result document there right after the document's S3 write. The S3 object stays the
record: a push that cannot be made (no such queue because the gateway never started with push,
SQS refusing, a name SQS cannot take) only costs the gateway a late result, found by its
fallback listing, and never fails the image. Hence every failure here is logged, not raised.

Sends are batched (SendMessageBatch, up to 10 messages and 256 KiB per call), and a batch waits
at most ``FLUSH_SECONDS`` for company, so a result reaches its gateway within about a second of
its write. Queue URLs are cached per device for the life of the process (warm drains look each
up once); a queue found missing is looked up again after ``MISSING_RETRY_SECONDS``, so a
gateway that starts later is pushed to soon.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from batchsight_pipeline.contracts import CONTRACT_VERSION, ImageMessage

__all__ = ["MAX_BATCH_BYTES", "ResultPush", "forget_queue_urls", "push_body", "queue_name"]

logger = Logger(service="batchsight-result-push")
MAX_ENTRIES = 10                 # SendMessageBatch's limit
MAX_BATCH_BYTES = 256 * 1024     # one message's and one batch's limit (bodies summed)
FLUSH_SECONDS = 1.0              # the longest a result waits for a batch to fill
MISSING_RETRY_SECONDS = 60.0
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")
_MISSING = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


def queue_name(prefix: str, device: str) -> str | None:
    """The device's result queue name, or None when SQS could not take it (the gateway checks
    its own name at start, and says so)."""
    name = f"{prefix}-{device}"
    return name if _QUEUE_NAME.fullmatch(name) else None


def push_body(image: ImageMessage, document: dict[str, Any]) -> str:
    """The message: the result document itself, or only its key when it would not fit."""
    head = {"v": CONTRACT_VERSION, "image_id": image.image_id, "key": image.result_key()}
    full = json.dumps({**head, "document": document})
    return full if len(full.encode()) <= MAX_BATCH_BYTES else json.dumps(head)


class _QueueUrls:
    """GetQueueUrl once per device and process; a missing queue is remembered for a while."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._known: dict[tuple[str, str], tuple[str | None, float]] = {}
        self._lock = threading.Lock()

    def url(self, sqs: Any, name: str) -> str | None:
        key = _cache_key(sqs, name)
        with self._lock:
            url, at = self._known.get(key, (None, -MISSING_RETRY_SECONDS))
        if url or self.clock() - at < MISSING_RETRY_SECONDS:
            return url
        try:
            url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in _MISSING:
                raise
            url = None  # the gateway has not started with push: it lists for its results
        with self._lock:
            self._known[key] = (url, self.clock())
        return url

    def forget(self, sqs: Any, name: str) -> None:
        with self._lock:
            self._known.pop(_cache_key(sqs, name), None)

    def forget_all(self) -> None:
        with self._lock:
            self._known.clear()


def _cache_key(sqs: Any, name: str) -> tuple[str, str]:
    """A queue is known per endpoint too: a process whose clients move (tests, the local cloud's
    restarts) must not send to a URL another endpoint gave."""
    return str(sqs.meta.endpoint_url), name


_URLS = _QueueUrls(time.monotonic)  # shared by the invocations of one warm process


def forget_queue_urls() -> None:
    """Look every queue up again: the queues were deleted and made anew (a local stack reset
    between tests; in Lambda a new process does the same)."""
    _URLS.forget_all()


class ResultPush:
    """Results waiting to be pushed, per device queue; one instance per drain invocation.

    ``add`` is called from the drain's worker threads; a full batch is sent on the caller's
    thread, the others by a flusher thread within ``FLUSH_SECONDS``. ``close`` sends what is
    left (call it before the function returns: Lambda freezes the process after).
    """

    def __init__(self, prefix: str, sqs: Any, *, urls: _QueueUrls = _URLS) -> None:
        self.prefix = prefix
        self.sqs = sqs
        self.urls = urls
        self._pending: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._closed = threading.Event()

    def add(self, image: ImageMessage, document: dict[str, Any]) -> None:
        """Queue one stored result for its device; never raises."""
        if not self.prefix:
            return  # the stack has no result queues configured: gateways list
        name = queue_name(self.prefix, image.device)
        if name is None:
            logger.warning("result not pushed: no SQS queue can have this name (the gateway lists for it)",
                           extra={"queue": f"{self.prefix}-{image.device}"})
            return
        body = push_body(image, document)
        with self._lock:
            bodies = self._pending.setdefault(name, [])
            full = bodies if sum(len(b.encode()) for b in bodies) + len(body.encode()) > MAX_BATCH_BYTES else None
            if full is not None:
                self._pending[name] = bodies = []
            bodies.append(body)
            if len(bodies) == MAX_ENTRIES:
                full, self._pending[name] = bodies, []
            self._start_flusher()
        if full:
            self._send(name, full)

    def close(self) -> None:
        """Send everything still waiting, and stop the flusher."""
        self._closed.set()
        if self._flusher is not None:
            self._flusher.join()
        self._flush()

    def _start_flusher(self) -> None:
        if self._flusher is None and not self._closed.is_set():
            self._flusher = threading.Thread(target=self._flush_every, name="result-push", daemon=True)
            self._flusher.start()

    def _flush_every(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS):
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            batches, self._pending = self._pending, {}
        for name, bodies in batches.items():
            if bodies:
                self._send(name, bodies)

    def _send(self, name: str, bodies: list[str]) -> None:
        """One SendMessageBatch; a failure is logged (the results are in S3 already)."""
        try:
            url = self.urls.url(self.sqs, name)
            if url is None:
                return
            response = self.sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "MessageBody": body} for n, body in enumerate(bodies)])
        except (ClientError, BotoCoreError) as exc:
            self.urls.forget(self.sqs, name)  # deleted since we looked it up, perhaps: look again next time
            logger.warning("results not pushed (the gateway lists for them)", extra={"queue": name, "error": str(exc)})
            return
        for failed in response.get("Failed", []):
            logger.warning("a result not pushed (the gateway lists for it)",
                           extra={"queue": name, "error": failed.get("Message")})
