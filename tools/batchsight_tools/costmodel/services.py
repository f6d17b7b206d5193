"""The simulated services: the image queue, the model lock, and the hosted model.

They model what costs time and money (when messages are visible, how long a start takes,
when hosting is billed) and nothing else. The decisions stay in the project's code: the
backend below is a real ``ModelBackend``, so the contract's start-timeout rule applies.
"""
from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from batchsight_pipeline.backends.base import FAILED, HOSTED, STARTING, STOPPED, ModelBackend
from batchsight_tools.costmodel.billing import Interval
from batchsight_tools.costmodel.engine import Engine


class Queue:
    """An SQS stand-in whose messages become visible at known times and are received FIFO.

    Every receive starts at or after the previous one, so the start and completion times
    stay sorted and the counts at any instant are two binary searches. Messages are kept in the
    order they become visible: the gateways of a site put theirs as their uploads finish, a
    small batch cut later may be visible before a large one.
    """

    def __init__(self) -> None:
        self.images: list[int] = []
        self.visible_at: list[float] = []
        self.started: list[float] = []
        self.completed: list[float] = []
        self.done: dict[int, float] = {}  # image -> when its result was stored

    def put(self, image: int, visible_at: float) -> None:
        if self.started and visible_at < self.started[-1]:
            raise ValueError("a message cannot become visible before a receive that already happened")
        at = bisect_right(self.visible_at, visible_at)
        self.images.insert(at, image)
        self.visible_at.insert(at, visible_at)

    def visible(self, t: float) -> int:
        """ApproximateNumberOfMessages at t."""
        return bisect_right(self.visible_at, t) - bisect_right(self.started, t)

    def in_flight(self, t: float) -> int:
        """ApproximateNumberOfMessagesNotVisible at t."""
        return bisect_right(self.started, t) - bisect_right(self.completed, t)

    @property
    def pending(self) -> int:
        """Messages not yet received (visible now or later)."""
        return len(self.visible_at) - len(self.started)

    def next_visible_at(self) -> float | None:
        return self.visible_at[len(self.started)] if self.pending else None

    def take(self, start: float, service_seconds: float) -> float:
        """Receive the next message at ``start`` and finish it; returns the completion time."""
        k = len(self.started)
        start = max(start, self.visible_at[k], self.started[-1] if self.started else start)
        self.started.append(start)
        self.completed.append(start + service_seconds)
        self.done[self.images[k]] = start + service_seconds
        return start + service_seconds

    def completed_at(self, image: int) -> float | None:
        return self.done.get(image)


class Lock:
    """The model lock item: a lease that one execution holds (DynamoDB conditional writes)."""

    def __init__(self, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self.owner: str | None = None
        self.expires_at = 0.0
        self.takeovers = 0

    def acquire(self, owner: str, now: float) -> bool:
        if self.owner is None or int(self.expires_at) < int(now) or self.owner == owner:
            if self.owner not in (None, owner):
                self.takeovers += 1
            self.owner, self.expires_at = owner, int(now) + self.lease_seconds
            return True
        return False

    def renew(self, owner: str, now: float) -> bool:
        if self.owner != owner:
            return False
        self.expires_at = int(now) + self.lease_seconds
        return True

    def hand_over(self, owner: str, successor: str, now: float) -> bool:
        """Pass our lock to a successor with a fresh lease (lock.hand_over)."""
        if self.owner not in (owner, successor):
            return False
        self.owner, self.expires_at = successor, int(now) + self.lease_seconds
        return True

    def release(self, owner: str) -> bool:
        if self.owner in (None, owner):
            self.owner = None
            return True
        return False


@dataclass
class StartTimes:
    """Model start durations, drawn uniformly from a range with a seeded generator."""

    low_seconds: float
    high_seconds: float
    seed: int = 7
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.low_seconds <= self.high_seconds:
            raise ValueError("start time range must satisfy 0 <= low <= high")
        self._rng = random.Random(self.seed)

    def draw(self) -> float:
        return self._rng.uniform(self.low_seconds, self.high_seconds)

    @property
    def mean_seconds(self) -> float:
        return (self.low_seconds + self.high_seconds) / 2.0


class Hosting:
    """The hosted model as the provider sees it: starts take a while, hosting is billed."""

    def __init__(self, start_times: StartTimes, *, fails: bool = False) -> None:
        self.start_times = start_times
        self.fails = fails
        self.status = STOPPED
        self.ready_at = 0.0
        self.opened_at = 0.0
        self.intervals: list[Interval] = []
        self.starts = 0

    def start(self, now: float) -> str:
        if self.status == STOPPED:
            self.status, self.opened_at = STARTING, now
            self.ready_at = now + self.start_times.draw()
            self.starts += 1
        return self.describe(now)[0]

    def describe(self, now: float) -> tuple[str, str]:
        if self.status == STARTING and now >= self.ready_at:
            self.status = FAILED if self.fails else HOSTED
        return self.status, "simulated hosting failure" if self.status == FAILED else ""

    def hosted(self, now: float) -> bool:
        return self.describe(now)[0] == HOSTED

    def stop(self, now: float) -> None:
        if self.status != STOPPED:
            self.intervals.append((self.opened_at, now))  # billed from the start call to the stop
            self.status = STOPPED


class SimulatedBackend(ModelBackend):
    """A real ModelBackend over the simulated hosting: start, status and stop go through base.py."""

    name = "simulated"

    def __init__(self, hosting: Hosting, engine: Engine, *, start_timeout_seconds: float) -> None:
        super().__init__(start_timeout_seconds=start_timeout_seconds)
        self.hosting = hosting
        self.engine = engine

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> SimulatedBackend:
        raise TypeError("the simulated backend is built by the cost model, not from a function's environment")

    @property
    def model_id(self) -> str:
        return "simulated-model"

    def _start(self, run_token: str) -> str:
        return self.hosting.start(self.engine.now)

    def _describe(self) -> tuple[str, str]:
        return self.hosting.describe(self.engine.now)

    def _stop(self) -> None:
        self.hosting.stop(self.engine.now)

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        raise NotImplementedError("the cost model drains at the backend's rate; it never calls detect")
