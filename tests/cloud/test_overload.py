"""Overload control's decisions (batchsight_pipeline.overload), on made-up checks a round apart.

A unit drains 10 images a second (DetectTps 10); DrainWorkers 2, so 8 units reach the Map's 16
workers. The target: a backlog clears within 15 minutes.
"""
from __future__ import annotations

from batchsight_pipeline.overload import (
    CALM_CHECKS, MAX_WORKERS, OK, SATURATED, SCALING, Load, assess, ceiling_units, workers_for)

ROUND = 280.0  # a drain round that never ran dry lasts the drain function's time
TARGET = 900.0


def check(previous: Load | None, *, visible: int, removed: int, max_units: int = 4, in_flight: int = 0,
          elapsed: float = ROUND) -> Load:
    now = (previous.checked_at if previous else 1_000_000.0) + (elapsed if previous else 0.0)
    return assess(previous, now=now, visible=visible, in_flight=in_flight, removed=removed, unit_tps=10.0,
                  drain_workers=2, max_units=max_units, target_seconds=TARGET)


def test_the_first_check_measures_nothing_and_runs_one_unit() -> None:
    load = check(None, visible=500, removed=0)
    assert (load.units, load.arrival_rate, load.unit_rate, load.state) == (1, 0.0, 0.0, OK)


def test_arrivals_below_one_unit_keep_one_unit() -> None:
    load = check(None, visible=3000, removed=0)
    load = check(load, visible=1600, removed=10 * 280)  # 5 a second came, 10 a second went
    assert (load.arrival_rate, load.unit_rate) == (5.0, 10.0)
    assert (load.units, load.state, load.saturated) == (1, OK, False)
    assert load.behind_seconds == 1600 / 5


def test_arrivals_at_twice_a_units_rate_scale_up_at_once_within_the_ceiling() -> None:
    load = check(None, visible=400, removed=0)
    load = check(load, visible=400 + 10 * 280, removed=10 * 280)  # 20 a second arrive, one unit drains 10
    assert load.unit_rate == 10.0 and load.arrival_rate == 20.0
    assert load.units == 3 and load.state == SCALING and not load.saturated  # 20 * 1.15 + backlog / 900
    assert workers_for(load.units, 2) == 6


def test_at_the_ceiling_a_growing_backlog_is_saturation_and_clears_with_hysteresis() -> None:
    load = check(None, visible=400, removed=0, max_units=2)
    load = check(load, visible=3200, removed=2800, max_units=2)  # 20 a second, one unit drains 10
    assert load.units == 2 and not load.saturated, "one check behind may be a batch landing at once"
    load = check(load, visible=3200 + 500 * 2, removed=20 * 280, max_units=2)  # two units: 20 a second, still more come
    assert load.saturated and load.state == SATURATED and load.strain == 2
    load = check(load, visible=2000, removed=20 * 280, max_units=2)  # arrivals fell: clearing, but slowly
    assert load.saturated and load.behind_seconds > TARGET / 2
    load = check(load, visible=200, removed=20 * 280, max_units=2)
    assert not load.saturated and load.state == SCALING


def test_units_come_down_one_at_a_time_after_calm_checks() -> None:
    load = Load(checked_at=1_000_000.0, visible=30, backlog=30, arrival_rate=2.0, unit_rate=10.0, units=3)
    for _ in range(CALM_CHECKS - 1):
        load = check(load, visible=30, removed=2 * 280)
        assert load.units == 3
    load = check(load, visible=30, removed=2 * 280)
    assert load.units == 2 and load.calm == 0


def test_a_short_interval_measures_nothing() -> None:
    """A hand-over or a retried check comes seconds after the last: no rate from that."""
    load = Load(checked_at=1_000_000.0, visible=3000, backlog=3000, arrival_rate=20.0, unit_rate=10.0, units=2)
    again = check(load, visible=3000, removed=0, elapsed=2.0)
    assert (again.arrival_rate, again.unit_rate) == (20.0, 10.0)


def test_a_round_that_ran_dry_does_not_measure_the_units_rate() -> None:
    """Workers waiting for images drain less than they could: only the arrivals are measured."""
    load = check(None, visible=15, removed=0)
    load = check(load, visible=0, removed=300)
    assert load.unit_rate == 0.0 and load.arrival_rate > 0


def test_the_ceiling_counts_only_units_that_add_workers() -> None:
    assert ceiling_units(20, drain_workers=2) == MAX_WORKERS // 2
    assert ceiling_units(3, drain_workers=16) == 1
    assert workers_for(9, 2) == MAX_WORKERS


def test_the_load_travels_as_json_and_back() -> None:
    load = check(check(None, visible=400, removed=0), visible=3200, removed=2800)
    assert Load.from_dict(load.to_dict()) == load
    assert Load.from_dict(None) is None and Load.from_dict({}) is None
    assert Load.from_dict({**load.to_dict(), "added_later": 1}) == load
