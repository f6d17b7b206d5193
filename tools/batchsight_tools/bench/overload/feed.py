"""The line: images uploaded and enqueued at a steady rate, as gateways send them.

Each image goes to the source bucket under ``incoming/`` and its message to the image queue, the
two calls a gateway's uploader makes (contracts/schemas/sqs_message.schema.json), paced against
the clock so that a slow call does not lower the rate: the feeder catches up after it.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Feed:
    """What was sent, and when (monotonic seconds), for the table and the per-image check."""

    sent: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


def feed(*, s3: Any, sqs: Any, bucket: str, queue_url: str, paths: list[Path], rate: float,
         into: Feed, stop: threading.Event) -> None:
    """Send ``paths`` at ``rate`` images a second until they run out or ``stop`` is set."""
    started = time.monotonic()
    try:
        for n, path in enumerate(paths):
            if stop.wait(max(0.0, n / rate - (time.monotonic() - started))):
                return
            data = path.read_bytes()
            image_id = hashlib.sha256(data).hexdigest()
            key = f"incoming/s1/l1/d1/2026/12/05/{image_id}{path.suffix}"
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({
                "v": 1, "bucket": bucket, "key": key, "image_id": image_id, "site": "s1", "line": "l1",
                "device": "d1", "captured_at": "2026-12-05T00:00:00Z", "batch_id": "b-overload",
                "file_name": path.name}))
            into.sent.append(image_id)
            into.times.append(time.monotonic())
    finally:
        into.done.set()
