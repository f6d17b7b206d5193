"""What one drain benchmark run is: its parameters, the throughput it can reach at best, the targets.

The ideal is ``min(cap, workers * concurrency / latency)``: the backend's rate cap, or as many
calls as the drain's detect slots can keep in flight. The drain itself may fall short of it by
the AWS calls each image costs, where they do not overlap the detect calls.
"""
from __future__ import annotations

from dataclasses import dataclass

TARGET_RATIO_CAP = 0.95          # the ideal is the rate cap: the limiter alone paces the drain
TARGET_RATIO_CONCURRENCY = 0.9   # the ideal is slots / latency: each slot must stay busy
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
    def limited_by(self) -> str:
        concurrency_bound = self.workers * self.concurrency / self.latency
        return "rate cap" if self.cap <= concurrency_bound else "concurrency / latency"

    @property
    def target_ratio(self) -> float:
        """The least share of the ideal the drain must reach."""
        return TARGET_RATIO_CAP if self.limited_by == "rate cap" else TARGET_RATIO_CONCURRENCY

    @property
    def ideal_hosted(self) -> float:
        """Seconds the model must be hosted at best: its start, then every image at the ideal rate."""
        return self.start_seconds + self.images / self.ideal
