"""The drain's token bucket, on a virtual clock (no sleeping, no timing assertions)."""
from __future__ import annotations

import pytest

from batchsight_pipeline.ratelimit import RateLimiter


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_calls_never_exceed_the_rate_after_the_burst() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(5.0, burst=2, clock=clock, sleep=clock.sleep)
    for _ in range(102):
        limiter.acquire()
    # two calls ride the burst, the other 100 are spaced at 5 per second
    assert clock.now == pytest.approx(20.0)


def test_idle_time_refills_at_most_the_burst() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(1.0, burst=3, clock=clock, sleep=clock.sleep)
    clock.now = 1000.0
    for _ in range(3):
        limiter.acquire()
    assert clock.now == 1000.0
    limiter.acquire()
    assert clock.now == pytest.approx(1001.0)


def test_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
