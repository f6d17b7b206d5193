"""The gateway's side of the simulation: when batches are cut, decided by the edge's own code.

This is the one module of the cloud package that imports the edge package (``batchsight``).
The rule "the cloud never imports edge code" is about what runs in Lambda; the cost model is
a planning and benchmark tool that runs on a workstation, and it must drive the gateway's
real ``BatchPolicy`` rather than a copy of it, so that a change to the batching rules
changes the figures. Keeping the import here, and only here, keeps that exception visible
and the Lambda handlers free of it.

The gateway does not depend on the cloud to decide a cut (only on its journal and its
clock), so its whole day of submissions is computed first and then replayed into the
simulated queue and state machine.
"""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from batchsight.batcher import BatchPolicy
from batchsight.config import BatchSettings

SQS_BATCH = 10  # send_message_batch takes ten entries


@dataclass(frozen=True)
class EdgeBatching:
    """The ``batch.*`` settings of the component."""

    max_age_seconds: float = 900.0
    interval_seconds: float = 3600.0
    max_images: int = 500


@dataclass(frozen=True)
class Uplink:
    """How long a submission takes: upload every image, enqueue, start the execution."""

    upload_seconds_per_image: float = 0.2  # a 200 KB image over a shared ~8 Mbit/s uplink
    upload_concurrency: int = 4  # CloudLink's upload pool
    call_seconds: float = 0.05  # one SQS or Step Functions call
    tick_seconds: float = 1.0  # the runtime ticks every 0.2 s; a second is fine-grained enough

    def submit_seconds(self, images: int) -> float:
        uploads = math.ceil(images / self.upload_concurrency) * self.upload_seconds_per_image
        return uploads + math.ceil(images / SQS_BATCH) * self.call_seconds


@dataclass(frozen=True)
class Submission:
    cut_at: float
    trigger: str
    images: tuple[int, ...]
    visible_at: float  # every message of the batch is in the queue
    execution_at: float  # StartExecution, named by the batch id


def submissions(arrivals: Sequence[float], batching: EdgeBatching,
                uplink: Uplink = Uplink()) -> list[Submission]:
    """Replay the arrivals through the gateway's BatchPolicy on a virtual clock."""
    settings = BatchSettings(interval_seconds=float(batching.interval_seconds),
                             max_images=int(batching.max_images),
                             max_age_seconds=float(batching.max_age_seconds))
    policy = BatchPolicy(settings, last_cut=0.0)
    waiting: deque[int] = deque()
    result: list[Submission] = []
    n, nxt = len(arrivals), 0
    t = arrivals[0] if n else 0.0
    while nxt < n or waiting:
        while nxt < n and arrivals[nxt] <= t:
            waiting.append(nxt)
            nxt += 1
        trigger = policy.due(waiting=len(waiting), oldest_seen=arrivals[waiting[0]] if waiting else None,
                             now=t)
        if trigger:
            batch = tuple(waiting.popleft() for _ in range(min(len(waiting), settings.max_images)))
            policy.last_cut = t
            visible = t + uplink.submit_seconds(len(batch))
            result.append(Submission(t, trigger, batch, visible, visible + uplink.call_seconds))
            t = visible + uplink.call_seconds  # the loop is busy while it submits
            continue
        if waiting:
            t += uplink.tick_seconds
        else:
            t = max(t + uplink.tick_seconds, arrivals[nxt])
    return result
