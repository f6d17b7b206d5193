"""Results the drain pushes to this gateway's own SQS queue, received on a thread of their own.

The queue, ``{aws.result_queue_prefix}-{device}``, is created here at start: CreateQueue with
the same attributes is idempotent, so a new gateway needs no change to the stack, and its
policy (``OwnResultQueue`` in cloud/template.yaml) names only its own queue. A long poll
(``WAIT_SECONDS``) answers as soon as a result arrives and costs one request per 20 s of
silence; it runs on its own thread because it blocks, where the main loop must not.

Each result message goes through ``ResultPuller.take_pushed``, the one way a result is stored,
and the batch id of a newly stored one to ``on_hosted`` (the main loop's model-hosted hint, and a
wake-up so the alert goes out now). The pipeline also announces each start of the model here
(``kind: hosting``, docs/contracts.md): when it is this gateway's model route (``aws.model``), its
execution name goes to ``on_hosted`` too, so the images waiting at this edge ride a hosting another
gateway started (``batch.follow``, site-wide); another model's hosting is no reason to send.
A message is deleted once taken, or once it proves useless; one whose result could not be
fetched stays and comes back. While the queue cannot be reached
``PushState`` is down and the puller lists every poll, as without push.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from batchsight.config import Config
from batchsight.live_config import Configured
from batchsight.results import PushState, ResultPuller

log = logging.getLogger(__name__)
WAIT_SECONDS = 20
RETENTION_SECONDS = 4 * 24 * 3600  # results of a gateway switched off over a long weekend wait for it
QUEUE_ATTRIBUTES = {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": str(RETENTION_SECONDS),
                    "ReceiveMessageWaitTimeSeconds": str(WAIT_SECONDS)}
OFF_CHECK_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 60.0


class ResultReceiver(Configured):
    """The receiving thread; ``start`` and ``stop`` come from the component's run and shutdown."""

    def __init__(self, config: Config, puller: ResultPuller, state: PushState, *, sqs: Any,
                 on_hosted: Callable[[str], None]) -> None:
        self.config = config
        self.puller = puller
        self.state = state
        self.sqs = sqs
        self.on_hosted = on_hosted
        self.receives = 0  # ReceiveMessage calls made, for the status and the tests
        self._stop = threading.Event()
        self._taking = threading.Lock()  # stop waits for a message being stored, never for a long poll
        self._thread = threading.Thread(target=self._run, name="result-push", daemon=True)

    def start(self) -> None:
        if self.config.results.push and not self.config.aws.result_queue_prefix:
            log.warning("results.push is on but aws.result_queue_prefix is empty, so results are listed: copy the "
                        "stack's output ResultQueuePrefix into it (or set results.push: false)")
        self._thread.start()

    def stop(self) -> None:
        """Stop taking messages. A long poll in flight is left to end on its own (the thread is a
        daemon): what it brings is not taken, and SQS delivers it again at the next start."""
        self._stop.set()
        with self._taking:
            self.state.down()

    def _run(self) -> None:
        url, failures = "", 0
        while not self._stop.is_set():
            queue = self.config.results.queue_name(self.config.aws, self.config.device)
            if not queue:
                self.state.down()  # push switched off, or the stack's prefix unknown: listing
                self._stop.wait(OFF_CHECK_SECONDS)
                continue
            try:
                url = url or self._open(queue)
                self.state.up(time.monotonic())
                self._receive(url)
                failures = 0
            except Exception as exc:  # noqa: BLE001 - any failure: list meanwhile, try again later
                url, failures = "", failures + 1
                self.state.down()
                wait = random.uniform(0, min(MAX_BACKOFF_SECONDS, 2.0 ** failures))
                log.warning("result queue unreachable (check aws.result_queue_prefix and the device policy's "
                            "OwnResultQueue statement); results are listed meanwhile",
                            extra={"queue": queue, "error": str(exc), "retry_in_s": round(wait, 1)})
                self._stop.wait(wait)

    def _open(self, queue: str) -> str:
        """The queue's URL, created with our attributes, or given them when an older version
        created it with others (CreateQueue then refuses, naming the queue as existing)."""
        try:
            return str(self.sqs.create_queue(QueueName=queue, Attributes=QUEUE_ATTRIBUTES)["QueueUrl"])
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
        url = str(self.sqs.get_queue_url(QueueName=queue)["QueueUrl"])
        self.sqs.set_queue_attributes(QueueUrl=url, Attributes=QUEUE_ATTRIBUTES)
        return url

    def _receive(self, url: str) -> None:
        self.receives += 1
        messages = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=WAIT_SECONDS).get("Messages", [])
        done = []
        with self._taking:
            if self._stop.is_set():
                return
            for message in messages:
                if self._take(message):
                    done.append(message)
        if done:
            self.sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done)])

    def _take(self, message: dict[str, Any]) -> bool:
        """Store one pushed result; False leaves the message to come back (its result could not
        be fetched or journaled now)."""
        notice = hosting_notice(message["Body"])
        if notice is not None:
            route, execution = notice
            if route == self.config.aws.model and execution:
                self.on_hosted(execution)
            return True
        try:
            batch_id = self.puller.take_pushed(message["Body"])
        except Exception as exc:  # noqa: BLE001 - S3 or the journal failed: the message comes back
            log.warning("pushed result not stored; it comes back", extra={"error": str(exc)})
            return False
        if batch_id is not None:
            self.on_hosted(batch_id)
        return True


def hosting_notice(body: str) -> tuple[str, str] | None:
    """(model route, execution) of a model-hosting notice; None for any other message (a result)."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if not isinstance(message, dict) or message.get("kind") != "hosting":
        return None
    return str(message.get("route") or "default"), str(message.get("execution") or "")
