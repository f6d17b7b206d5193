"""Overload control: arrivals against the drain rate, scaling within a ceiling, backpressure.

CheckWork runs after every drain round. From the backlog then and now and the images the round
took, it estimates the arrival rate, and in rounds whose workers never ran dry, what one unit of
capacity drains per second. It asks for enough units to absorb the arrivals (with headroom) and
clear the backlog within ``BacklogTargetMinutes``, up to ``MaxScaleUnits``: scaling up at once,
down one unit at a time after a few calm checks. A unit is one instance of a real-time endpoint
(the backend's ``scale``) and ``DrainWorkers`` more drain workers (so ``DetectTps`` is per unit,
and each worker keeps its share of it). At the ceiling, when the arrivals still outpace the drain
or the backlog would not clear within the target, the pipeline is *saturated*: CheckWork says so
in the ``Overloaded`` metric (an alarm within minutes) and in the status object the gateways
read (backpressure: they stop re-sending late images the cloud still holds).

With the detector in the drain (the lambda backend, ``DrainTargetSeconds``) CheckWork also runs
more workers for a bigger backlog (check_work.plan), so a unit's measured rate is what the drain
did at that backlog, those workers included.

Pure: the cost model's week simulation runs the same function on its virtual clock. The state
it carries between checks (``Load``) travels in the execution's data and across hand-overs.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

MESSAGES_PER_RECEIVE = 10
MAX_WORKERS = 16  # the Drain Map's MaxConcurrency in the state machine
HEADROOM = 1.15  # capacity asked above the arrivals: rounds have gaps (receives, the loop's own tasks)
SMOOTHING = 0.5  # weight of the newest sample in the smoothed rates
CALM_CHECKS = 3  # checks in a row asking for fewer units before one unit is given back
# Checks in a row at the ceiling falling behind before the pipeline counts as saturated: one check
# after a gateway's batch landed at once looks like a flood (the week's simulation raised the alarm
# every couple of hours at two thirds of one unit's rate with 1); a real overload keeps the queue
# from emptying, and the same execution sees it again a round later.
STRAIN_CHECKS = 2
MIN_SAMPLE_SECONDS = 20.0  # a shorter interval (a hand-over, a retry) is too short to measure a rate
MAX_SAMPLE_SECONDS = 3600.0  # a longer one is no drain round (a pause, a load carried from elsewhere)
MAX_BEHIND_SECONDS = 7 * 86_400.0  # "never" within JSON's numbers
OK, SCALING, SATURATED = "ok", "scaling", "saturated"


@dataclass(frozen=True)
class Load:
    """What one check leaves for the next: the backlog then, the rates so far, the units in use."""

    checked_at: float = 0.0  # epoch seconds
    visible: int = 0
    backlog: int = 0  # visible and in flight
    arrival_rate: float = 0.0  # images per second, smoothed
    unit_rate: float = 0.0  # images per second one unit drained in a round that never ran dry (0: unknown)
    units: int = 1
    calm: int = 0
    strain: int = 0  # checks in a row at the ceiling falling behind
    saturated: bool = False
    state: str = OK
    behind_seconds: float = 0.0  # until the backlog clears at the current rates

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Load | None:
        """The load the state machine carried, or None (first check of a chain, or nothing carried)."""
        if not isinstance(data, dict) or not data.get("checked_at"):
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def workers_for(units: int, drain_workers: int) -> int:
    """Drain workers a number of units runs: DrainWorkers each, within the Map's MaxConcurrency."""
    return max(1, min(MAX_WORKERS, drain_workers * max(1, units)))


def ceiling_units(max_units: int, drain_workers: int) -> int:
    """The units the ceiling allows that still add workers (16 workers at most)."""
    return max(1, min(max_units, math.ceil(MAX_WORKERS / drain_workers)))


def assess(previous: Load | None, *, now: float, visible: int, in_flight: int, removed: int,
           unit_tps: float, drain_workers: int, max_units: int, target_seconds: float) -> Load:
    """The load now, and the units to run: ``removed`` is what the round just ended took from the
    queue (results and dead letters), ``unit_tps`` the configured rate of one unit (DetectTps)."""
    backlog = visible + in_flight
    previous = previous or Load(checked_at=now, visible=visible, backlog=backlog)
    elapsed = now - previous.checked_at
    arrival, unit_rate = previous.arrival_rate, previous.unit_rate
    if MIN_SAMPLE_SECONDS <= elapsed <= MAX_SAMPLE_SECONDS:
        sample = max(0.0, (backlog - previous.backlog + removed) / elapsed)
        arrival = sample if previous.arrival_rate == 0 else _smooth(previous.arrival_rate, sample)
        ran_dry = previous.visible < MESSAGES_PER_RECEIVE * workers_for(previous.units, drain_workers) or visible == 0
        if removed and not ran_dry:
            measured = removed / elapsed / previous.units
            unit_rate = measured if previous.unit_rate == 0 else _smooth(previous.unit_rate, measured)
    per_unit = unit_rate or unit_tps
    top = ceiling_units(max_units, drain_workers)
    wanted = max(1, math.ceil((arrival * HEADROOM + backlog / target_seconds) / per_unit))
    units, calm = previous.units, 0
    if min(wanted, top) > units:
        units = min(wanted, top)
    elif wanted < units:
        calm = previous.calm + 1
        if calm >= CALM_CHECKS:
            units, calm = units - 1, 0
    capacity = units * per_unit
    behind = backlog / (capacity - arrival) if capacity > arrival else MAX_BEHIND_SECONDS
    behind = min(behind, MAX_BEHIND_SECONDS) if backlog else 0.0
    falling_behind = arrival >= capacity or behind > target_seconds
    recovered = arrival < capacity and behind < target_seconds / 2
    strain = previous.strain + 1 if units >= top and falling_behind else 0
    saturated = units >= top and (strain >= STRAIN_CHECKS or (previous.saturated and not recovered))
    state = SATURATED if saturated else (SCALING if units > 1 else OK)
    return Load(checked_at=now, visible=visible, backlog=backlog, arrival_rate=round(arrival, 4),
                unit_rate=round(unit_rate, 4), units=units, calm=calm, strain=strain, saturated=saturated, state=state,
                behind_seconds=round(behind, 1))


def _smooth(old: float, sample: float) -> float:
    return (1 - SMOOTHING) * old + SMOOTHING * sample
