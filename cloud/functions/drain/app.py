"""Drain: receive images from the queue, run them through the hosted model, store results.

Order matters for exactly-one-result: the result document is written first, then the image
is moved, and only then is the message deleted. A crash anywhere leaves the message to be
redelivered, and the deterministic result key turns the redelivery into an overwrite. The
deletes go ten at a time (DeleteMessageBatch, ``Deletions``): a message whose result is stored
waits at most ``HOLD_SECONDS`` for its delete, well inside its visibility timeout, and the round
deletes the rest before it returns (a crash before then costs a redelivery, never a result).

A round ends before the function's time does. A detect call starts only while it can still
finish, however slowly the model answers (``ModelBackend.max_detect_seconds``: its client's
timeouts and retries), with ``FINISH_SECONDS`` left for the image's result, move and delete;
messages are received only while those held and the new ones can be judged in the time left.
A message received but not started by then goes back to the queue at once (its visibility set
to 0), so the next round takes it without waiting out the visibility timeout.
"""
from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from batchsight_pipeline.aws import client
from batchsight_pipeline.backends import ModelBackend, ModelRejectedImage, ModelState, backend_from_settings
from batchsight_pipeline.backends.base import MASK_KEY
from batchsight_pipeline.contracts import ImageMessage, PoisonMessage, parse_message, result_document
from batchsight_pipeline.metrics import LineTally, metrics, record_drain
from batchsight_pipeline.ratelimit import RateLimiter
from batchsight_pipeline.result_push import ResultPush
from batchsight_pipeline.routes import serving
from batchsight_pipeline.settings import Settings

logger = Logger(service="batchsight-drain")
FINISH_SECONDS = 15.0       # after a detect call: the result document, the image's move, the delete
RECEIVE_LEAD_SECONDS = 10.0  # a message received now waits for a detect slot: none this close to the end
# How long before its function's time ends a drain with the default backend receives no more.
SAFETY_MARGIN_MS = int((ModelBackend.max_detect_seconds + FINISH_SECONDS + RECEIVE_LEAD_SECONDS) * 1000)
VISIBILITY_SECONDS_PER_BATCH = 60
RETRY_BACKOFF_SECONDS = 2
MESSAGES_PER_RECEIVE = 10
IO_THREADS_PER_DETECT_SLOT = 3
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}
HOLD_SECONDS = 5.0  # longest a stored result's message waits for its batched delete


@dataclass
class Outcome:
    processed: int = 0
    anomalous: int = 0
    poisoned: int = 0
    retried: int = 0
    returned: int = 0  # received, then given back unstarted: too little time was left

    def add(self, other: Outcome) -> None:
        self.processed += other.processed
        self.anomalous += other.anomalous
        self.poisoned += other.poisoned
        self.retried += other.retried
        self.returned += other.returned


def _deliveries(message: dict[str, Any]) -> int:
    """How many times SQS has handed this message out, this time included."""
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))


class OutOfTime(Exception):
    """Too little of the function's time is left to start this image's detect call."""


class TimeoutTooShort(RuntimeError):
    """The function's whole timeout cannot fit one image of its backend: a deployment error. It
    fails the execution (its model stopped), where a round that quietly took nothing would leave
    the queue as it is, and the pipeline would go on starting rounds, and hand-overs, for ever."""


class Deletions:
    """Messages whose results are stored, deleted with DeleteMessageBatch: one request for up to
    ten images instead of one each. Thread-safe (every drain thread adds to it)."""

    def __init__(self, sqs: Any, queue_url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.sqs, self.queue_url, self.clock = sqs, queue_url, clock
        self._handles: list[str] = []
        self._oldest = 0.0
        self._lock = threading.Lock()

    def add(self, receipt_handle: str) -> None:
        with self._lock:
            if not self._handles:
                self._oldest = self.clock()
            self._handles.append(receipt_handle)
            full = len(self._handles) >= MESSAGES_PER_RECEIVE
        if full:
            self.flush()

    def flush_due(self) -> None:
        """Delete what has waited ``HOLD_SECONDS``: a slow round never holds a stored result long."""
        if self._handles and self.clock() - self._oldest >= HOLD_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Delete every message held. One that fails comes back after its visibility timeout and
        finds its result stored (``Drainer._fetch``): logged, not raised."""
        with self._lock:
            handles, self._handles = self._handles, []
        for first in range(0, len(handles), MESSAGES_PER_RECEIVE):
            chunk = handles[first:first + MESSAGES_PER_RECEIVE]
            failed = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(chunk)]).get("Failed", [])
            if failed:
                logger.warning("messages not deleted, redelivered later", extra={"failed": failed})


class Drainer:
    """Processes received messages; one instance per invocation. ``remaining_ms`` is the
    function's time left (Lambda's ``context.get_remaining_time_in_millis``)."""

    def __init__(self, settings: Settings, backend: ModelBackend, execution: str, *,
                 remaining_ms: Callable[[], int]) -> None:
        self.settings = settings
        self.backend = backend
        self.execution = execution
        self.remaining_ms = remaining_ms
        self.limiter = RateLimiter(settings.worker_tps, burst=settings.detect_concurrency)
        self.detect_slots = threading.Semaphore(settings.detect_concurrency)
        self.s3 = client("s3")
        self.sqs = client("sqs")
        self.lines = LineTally()  # per site/line counts for the metrics
        self.push = ResultPush(settings.result_queue_prefix, self.sqs)  # each result to its gateway's queue
        self.deletions = Deletions(self.sqs, settings.queue_url)

    def require_time_for_one_image(self) -> None:
        """At a round's start (its function's full timeout left): TimeoutTooShort unless one image
        fits, its detect call's worst case, its result and move, and the lead before it."""
        needed = self.backend.max_detect_seconds + FINISH_SECONDS + RECEIVE_LEAD_SECONDS
        if self._seconds_left() < needed:
            raise TimeoutTooShort(f"the drain function has {self._seconds_left():.0f} s, less than the {needed:.0f} s "
                                  f"one image of the {self.backend.name} backend may need (its detect call's timeouts "
                                  "and retries, then its result and move): raise the DrainFunction's Timeout")

    def receive(self, *, held: int = 0) -> list[dict[str, Any]]:
        """Take only as many messages as the rate lets us start, ``held`` ones first, while a
        detect call started then could still finish."""
        usable = self._seconds_left() - self.backend.max_detect_seconds - FINISH_SECONDS - RECEIVE_LEAD_SECONDS
        count = max(0, min(MESSAGES_PER_RECEIVE, int(usable * self.settings.worker_tps) - held))
        if count == 0:
            return []
        response = self.sqs.receive_message(
            QueueUrl=self.settings.queue_url, MaxNumberOfMessages=count, WaitTimeSeconds=1,
            VisibilityTimeout=VISIBILITY_SECONDS_PER_BATCH, AttributeNames=["ApproximateReceiveCount"])
        return list(response.get("Messages", []))

    def process(self, message: dict[str, Any]) -> Outcome:
        """Handle one message; transient failures leave it in the queue for redelivery, and one
        there is no time left for goes back to the queue at once."""
        try:
            image = parse_message(message["Body"], source_bucket=self.settings.source_bucket,
                                  final_bucket=self.settings.final_bucket)
            anomalous = self._detect_and_store(image, redelivered=_deliveries(message) > 1)
        except OutOfTime:
            self.sqs.change_message_visibility(QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                               VisibilityTimeout=0)
            return Outcome(returned=1)
        except (PoisonMessage, ModelRejectedImage) as exc:
            self._dead_letter(message, reason=str(exc))
            return Outcome(poisoned=1)
        except Exception as exc:  # noqa: BLE001 - any other failure is retried, a bounded number of times
            return self._retry_later(message, exc)
        self.deletions.add(message["ReceiptHandle"])
        self.lines.record(image.site, image.line, anomalous)
        return Outcome(processed=1, anomalous=int(anomalous))

    def _seconds_left(self) -> float:
        return self.remaining_ms() / 1000

    def _check_time(self) -> None:
        """Raise OutOfTime unless a detect call started now finishes, with its image's S3 and
        SQS calls, before the function's time runs out."""
        if self._seconds_left() < self.backend.max_detect_seconds + FINISH_SECONDS:
            raise OutOfTime

    def _detect_and_store(self, image: ImageMessage, *, redelivered: bool = False) -> bool:
        self._check_time()
        body = self._fetch(image, redelivered=redelivered)
        if body is None:
            return False  # already processed by an earlier delivery: nothing to redo
        with self.detect_slots:  # the model never sees more than DetectConcurrency calls at once
            self.limiter.acquire()
            self._check_time()  # the wait for a slot and a token may have used it up
            result = self.backend.detect(body, content_type=CONTENT_TYPES[image.extension])
        mask = result.pop(MASK_KEY, None)
        model = {"backend": self.backend.name, "name": self.backend.model_id}
        if self.backend.model_version:
            model["version"] = self.backend.model_version
        document = result_document(image, result=result, model=model, execution=self.execution)
        if mask is not None:  # segmentation masks are objects of their own, never inline bytes
            self.s3.put_object(Bucket=self.settings.final_bucket, Key=image.mask_key(), Body=mask,
                               ContentType="image/png")
            document["mask"] = {"key": image.mask_key()}
        self.s3.put_object(Bucket=self.settings.final_bucket, Key=image.result_key(),
                           Body=json.dumps(document).encode(), ContentType="application/json")
        self.push.add(image, document)  # never raises: the gateway lists for a result not pushed
        self._move_image(image)
        return bool(result.get("IsAnomalous"))

    def _move_image(self, image: ImageMessage) -> None:
        """Copy then delete; a concurrent duplicate delivery may have moved it already. An image
        uploaded to its place (ImageUpload=final-bucket) stays: no COPY, no DELETE."""
        if image.in_place(self.settings.final_bucket):
            return
        try:
            self.s3.copy_object(Bucket=self.settings.final_bucket, Key=image.image_key(),
                                CopySource={"Bucket": image.bucket, "Key": image.key})
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchKey", "404") or not self._exists(image.image_key()):
                raise
        self.s3.delete_object(Bucket=image.bucket, Key=image.key)

    def _fetch(self, image: ImageMessage, *, redelivered: bool = False) -> bytes | None:
        """The image bytes, or None when a previous delivery already stored its result (and moved
        it). An image uploaded to its place is never moved, so a redelivery asks for the result."""
        if redelivered and image.in_place(self.settings.final_bucket) and self._exists(image.result_key()):
            return None
        try:
            return self.s3.get_object(Bucket=image.bucket, Key=image.key)["Body"].read()
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
                raise
        if self._exists(image.result_key()):
            return None
        raise PoisonMessage(f"s3://{image.bucket}/{image.key} does not exist and has no result")

    def _exists(self, final_key: str) -> bool:
        try:
            self.s3.head_object(Bucket=self.settings.final_bucket, Key=final_key)
        except ClientError:
            return False
        return True

    def _retry_later(self, message: dict[str, Any], error: Exception) -> Outcome:
        """Back off and let SQS redeliver; the last allowed delivery dead-letters with the reason.

        SQS' own redrive would move the message too, but without saying why.
        """
        deliveries = _deliveries(message)
        reason = f"failed {deliveries} time(s), last error {type(error).__name__}: {error}"
        if deliveries >= self.settings.max_receive_count:
            self._dead_letter(message, reason=reason)
            return Outcome(poisoned=1)
        logger.warning("image failed, retried later", extra={"message_id": message["MessageId"], "reason": reason})
        self.sqs.change_message_visibility(QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                           VisibilityTimeout=min(300, RETRY_BACKOFF_SECONDS * 2 ** (deliveries - 1)))
        return Outcome(retried=1)

    def _dead_letter(self, message: dict[str, Any], *, reason: str) -> None:
        """Poison goes to the DLQ at once, with its reason, instead of keeping the model up."""
        logger.warning("poison message dead-lettered", extra={"message_id": message["MessageId"], "reason": reason})
        self.sqs.send_message(
            QueueUrl=self.settings.dead_letter_queue_url, MessageBody=message["Body"],
            MessageAttributes={
                "reason": {"DataType": "String", "StringValue": reason[:1000]},
                "execution": {"DataType": "String", "StringValue": self.execution or "-"},
            })
        self.sqs.delete_message(QueueUrl=self.settings.queue_url, ReceiptHandle=message["ReceiptHandle"])


def drain(drainer: Drainer, concurrency: int, *, tps: float) -> Outcome:
    """Keep every detect slot busy until the queue is empty or time runs out.

    Each image also needs S3 and SQS calls around its detect, so those run on more threads
    than detect may use (the semaphore in Drainer bounds the model), and the next messages
    are received while earlier ones are still in flight rather than after a whole batch.
    """
    total = Outcome()
    # no more held than the rate lets us finish well inside their visibility timeout
    in_flight_limit = max(1, min(2 * concurrency + MESSAGES_PER_RECEIVE,
                                 int(tps * VISIBILITY_SECONDS_PER_BATCH / 2)))
    with ThreadPoolExecutor(max_workers=IO_THREADS_PER_DETECT_SLOT * concurrency) as pool:
        pending: set[Future[Outcome]] = set()
        try:
            while True:
                if len(pending) < in_flight_limit:
                    messages = drainer.receive(held=len(pending))
                    # each on a copy of this context: the route's settings (routes.serving) go with it
                    pending |= {pool.submit(contextvars.copy_context().run, drainer.process, message)
                                for message in messages}
                    if not pending:
                        return total
                    if messages and len(pending) < in_flight_limit:
                        continue
                done, pending = wait(pending, timeout=HOLD_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:
                    total.add(future.result())
                drainer.deletions.flush_due()
        finally:
            wait(pending)  # their results may be stored: their deletes go with the rest
            drainer.deletions.flush()


@logger.inject_lambda_context
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    with serving(event):  # the execution's model route: its queue, its backend
        return drain_round(event, context)


def drain_round(event: dict[str, Any], context: Any) -> dict[str, int]:
    """One drain worker's round for the route being served."""
    settings = Settings.from_env()
    backend = backend_from_settings(settings)
    if event.get("model"):  # judge with the model version this execution started
        backend = backend.pinned(ModelState(**event["model"]))
    drainer = Drainer(settings, backend, str(event.get("execution", "")),
                      remaining_ms=context.get_remaining_time_in_millis)
    drainer.require_time_for_one_image()
    try:
        total = drain(drainer, settings.detect_concurrency, tps=settings.worker_tps)
    finally:
        drainer.push.close()  # before Lambda freezes the process
    logger.info("drain finished", extra={"worker": event.get("worker"), **total.__dict__})
    record_drain(drainer.lines, retried=total.retried, model=event.get("model") if backend.idle_cost else None)
    return dict(total.__dict__)
