"""What one drain benchmark run is: its parameters, the throughput it can reach at best, the targets.

The ideal is ``min(cap, workers * concurrency / latency)``: the backend's rate cap, or as many
calls as the drain's detect slots can keep in flight. The drain itself may fall short of it
by its batch bound (``batch_bound``) and by the AWS calls each image costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

RECEIVE_BATCH = 10  # the drain's MaxNumberOfMessages
TARGET_RATIO = 0.85
MAX_OVERHEAD_SECONDS = 120.0


@dataclass
class DrainConfig:
    images: int
    latency: float
    concurrency: int
    workers: int
    cap: float
    start_seconds: float
    probe: int

    @property
    def ideal(self) -> float:
        return min(self.cap, self.workers * self.concurrency / self.latency)

    @property
    def batch_bound(self) -> float:
        """The drain's own bound with free AWS calls: each worker receives up to 10 messages and
        waits for all of them before the next receive, so only 10 / ceil(10 / concurrency)
        detect calls per worker are in flight on average over a batch."""
        usable = RECEIVE_BATCH / math.ceil(RECEIVE_BATCH / self.concurrency)
        return min(self.cap, self.workers * usable / self.latency)

    @property
    def limited_by(self) -> str:
        concurrency_bound = self.workers * self.concurrency / self.latency
        return "rate cap" if self.cap <= concurrency_bound else "concurrency / latency"

    @property
    def ideal_hosted(self) -> float:
        """Seconds the model must be hosted at best: its start, then every image at the ideal rate."""
        return self.start_seconds + self.images / self.ideal
