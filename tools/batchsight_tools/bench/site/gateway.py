"""One simulated gateway: its batches sent as a gateway sends them, its results received on its queue.

What a gateway does towards the cloud, with the same calls and shapes (contracts/schemas): each
image to ``incoming/{site}/{line}/{device}/...`` in the source bucket, its message to its model
route's queue, and one execution per batch, named by the batch id, with its route in the input;
the results arrive on its own queue ``{ResultQueuePrefix}-{device}``, created with the component's
attributes (``batchsight.push_receiver.QUEUE_ATTRIBUTES``). What is not the component's: no
journal, no camera folder; 40 component processes would not fit on 2 cores beside the stack.
Every result is checked as it arrives: its key in this gateway's own prefix, its image one this
gateway sent, judged by this gateway's model.
"""
from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchsight.push_receiver import QUEUE_ATTRIBUTES

SITE = "s1"
DAY = "2026/12/05"


@dataclass(frozen=True)
class Identity:
    device: str
    line: str
    route: str
    model_name: str  # the model file's name: what a result's model.name must say
    queue_url: str  # the route's image queue


@dataclass
class Seen:
    """What one gateway sent and received (monotonic seconds)."""

    sent: dict[str, float] = field(default_factory=dict)  # image id -> when enqueued
    received: dict[str, float] = field(default_factory=dict)  # image id -> when its result arrived
    duplicates: int = 0
    foreign: list[str] = field(default_factory=list)  # results that were not this gateway's, with why
    wrong_model: int = 0
    executions: int = 0
    notices: dict[str, int] = field(default_factory=dict)  # hosting notices heard, by route


class SimGateway:
    def __init__(self, identity: Identity, clients: dict[str, Any], *, buckets: tuple[str, str],
                 state_machine_arn: str, result_queue: str) -> None:
        self.identity = identity
        self.s3, self.sqs, self.sfn = clients["s3"], clients["sqs"], clients["stepfunctions"]
        (self.bucket, self.final_bucket), self.state_machine_arn = buckets, state_machine_arn
        self.result_url = str(self.sqs.create_queue(QueueName=result_queue, Attributes=QUEUE_ATTRIBUTES)["QueueUrl"])
        self.seen = Seen()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._receiver = threading.Thread(target=self._receive, name=f"results-{identity.device}", daemon=True)

    def start(self) -> None:
        self._receiver.start()

    def stop(self) -> None:
        self._stop.set()
        self._receiver.join(timeout=30)

    def send_batch(self, paths: list[Path]) -> None:
        """Upload, enqueue and start, as the component's CloudLink does for one batch."""
        batch_id = f"{self.identity.device}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
        entries = []
        for n, path in enumerate(paths):
            data = path.read_bytes()
            image_id = hashlib.sha256(data).hexdigest()
            key = f"incoming/{SITE}/{self.identity.line}/{self.identity.device}/{DAY}/{image_id}{path.suffix}"
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data)
            entries.append({"Id": str(n), "MessageBody": json.dumps({
                "v": 1, "bucket": self.bucket, "key": key, "image_id": image_id, "site": SITE,
                "line": self.identity.line, "device": self.identity.device, "batch_id": batch_id,
                "captured_at": "2026-12-05T00:00:00Z", "file_name": path.name})})
            with self._lock:
                self.seen.sent[image_id] = time.monotonic()
        self.sqs.send_message_batch(QueueUrl=self.identity.queue_url, Entries=entries)
        self.sfn.start_execution(stateMachineArn=self.state_machine_arn, name=batch_id, input=json.dumps({
            "v": 1, "trigger": "edge", "batch_id": batch_id, "site": SITE, "line": self.identity.line,
            "device": self.identity.device, "image_count": len(paths), "route": self.identity.route}))
        self.seen.executions += 1

    def missing(self) -> int:
        with self._lock:
            return len(set(self.seen.sent) - set(self.seen.received))

    def _receive(self) -> None:
        while not self._stop.is_set():
            messages = self.sqs.receive_message(QueueUrl=self.result_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=2).get("Messages", [])
            for message in messages:
                self._take(json.loads(message["Body"]))
            if messages:
                self.sqs.delete_message_batch(QueueUrl=self.result_url, Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])

    def _take(self, body: dict[str, Any]) -> None:
        if body.get("kind") == "hosting":
            route = str(body.get("route") or "default")
            self.seen.notices[route] = self.seen.notices.get(route, 0) + 1
            return
        image_id, key = str(body.get("image_id")), str(body.get("key", ""))
        prefix = f"results/{SITE}/{self.identity.line}/{self.identity.device}/"
        with self._lock:
            if not key.startswith(prefix) or image_id not in self.seen.sent:
                self.seen.foreign.append(f"{key} reached {self.identity.device}")
                return
            if image_id in self.seen.received:
                self.seen.duplicates += 1
                return
            self.seen.received[image_id] = time.monotonic()
        document = body.get("document") or json.loads(
            self.s3.get_object(Bucket=self.final_bucket, Key=key)["Body"].read())
        if document["model"]["name"] != self.identity.model_name:
            with self._lock:
                self.seen.wrong_model += 1
