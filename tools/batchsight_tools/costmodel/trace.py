"""Image arrival traces: the default factory day, a trace from a rate, and CSV files.

A trace is a sorted list of arrival times in seconds from the start of the first day
(00:00). Everything is seeded, so the same arguments give the same trace on any machine.
"""
from __future__ import annotations

import csv
import math
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

DAY = 86_400.0
HOUR = 3_600.0
CSV_HEADER = "arrival_seconds"


class TraceError(ValueError):
    """A trace file or a shift description is malformed; the message says where."""


@dataclass(frozen=True)
class Shift:
    """One shift of the line: when it runs, how fast the camera shoots, when it pauses."""

    start_hour: float
    hours: float
    images_per_hour: float
    breaks: tuple[tuple[float, float], ...] = ()  # (hours after shift start, minutes)
    handover_minutes: float = 0.0  # line restarts after the shift change


# Three shifts around the clock; the night shift runs lighter. Each shift starts with a
# 10-minute handover and has two 15-minute breaks and a 30-minute meal break.
_BREAKS = ((2.0, 15.0), (4.0, 30.0), (6.0, 15.0))
DEFAULT_SHIFTS = (
    Shift(start_hour=6, hours=8, images_per_hour=540, breaks=_BREAKS, handover_minutes=10),
    Shift(start_hour=14, hours=8, images_per_hour=450, breaks=_BREAKS, handover_minutes=10),
    Shift(start_hour=22, hours=8, images_per_hour=240, breaks=_BREAKS, handover_minutes=10),
)
# The second camera: an inspection station that photographs a tray at a time.
BURST_IMAGES = 24
BURST_SPACING_SECONDS = 0.5
BURSTS_PER_HOUR = 5.0
STOPPAGES_PER_SHIFT = 1.5  # unplanned line stops, 5 to 25 minutes each


def _running(shift: Shift, rng: random.Random) -> list[tuple[float, float]]:
    """The shift's production intervals (absolute seconds, may run past midnight)."""
    start = shift.start_hour * HOUR
    end = start + shift.hours * HOUR
    pauses = [(start, start + shift.handover_minutes * 60.0)]
    pauses += [(start + at * HOUR, start + at * HOUR + minutes * 60.0) for at, minutes in shift.breaks]
    for _ in range(_poisson(rng, STOPPAGES_PER_SHIFT)):
        at = rng.uniform(start, end)
        pauses.append((at, at + rng.uniform(5.0, 25.0) * 60.0))
    intervals, cursor = [], start
    for pause_start, pause_end in sorted(pauses):
        if pause_start > cursor:
            intervals.append((cursor, min(pause_start, end)))
        cursor = max(cursor, pause_end)
    if cursor < end:
        intervals.append((cursor, end))
    return [(a, b) for a, b in intervals if b > a]


def _poisson(rng: random.Random, mean: float) -> int:
    limit, k, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k


def _poisson_times(rng: random.Random, start: float, end: float, per_hour: float) -> list[float]:
    times: list[float] = []
    t = start
    if per_hour <= 0:
        return times
    while True:
        t += rng.expovariate(per_hour / HOUR)
        if t >= end:
            return times
        times.append(t)


def default_day(*, seed: int = 7, days: int = 1) -> list[float]:
    """Three shifts with breaks and stoppages: a line camera plus a bursty tray camera.

    The night shift that starts at 22:00 runs on into the next morning; its first six hours
    of the previous night fill 00:00-06:00, so the trace is one whole day of production.
    """
    rng = random.Random(seed)
    arrivals: list[float] = []
    for day in range(-1, days):
        for shift in DEFAULT_SHIFTS:
            for a, b in _running(shift, rng):
                a, b = a + day * DAY, b + day * DAY
                arrivals += _poisson_times(rng, a, b, shift.images_per_hour)
                for burst in _poisson_times(rng, a, b, BURSTS_PER_HOUR):
                    count = max(1, int(rng.gauss(BURST_IMAGES, BURST_IMAGES / 4)))
                    arrivals += [burst + n * BURST_SPACING_SECONDS for n in range(count)]
    return sorted(t for t in arrivals if 0.0 <= t < days * DAY)


SHIFTS_FORM = "HH:MM-HH:MM[,HH:MM-HH:MM...] in the order of the day, e.g. 06:00-14:00,14:00-22:00,22:00-06:00"
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


def parse_shifts(text: str) -> list[tuple[float, float]]:
    """'06:00-14:00,14:00-22:00' -> [(6.0, 14.0), (14.0, 22.0)]; an end before the start runs past
    midnight ('22:00-06:00' -> (22.0, 30.0)).

    The hours are a 24-hour clock with minutes (24:00 only as an end), the shifts come in the
    order of the day and none overlaps another (the last one may run into the next morning
    up to the first one's start); anything else is a TraceError naming the shift and the form.
    """
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise TraceError(f"no shifts given: expected {SHIFTS_FORM}")
    spans: list[tuple[float, float]] = []
    for part in parts:
        start_text, _, end_text = part.partition("-")
        start, end = _clock(start_text), _clock(end_text)
        if start is None or end is None or start >= 24.0:
            raise TraceError(f"shift {part!r}: expected HH:MM-HH:MM on a 24-hour clock, e.g. 06:00-14:00")
        if end == start:
            raise TraceError(f"shift {part!r} ends when it starts; for a line that runs all day leave the "
                             "shifts out")
        spans.append((start, end if end > start else end + 24.0))
    for index in range(1, len(spans)):
        (start, _), (previous_start, previous_end) = spans[index], spans[index - 1]
        part, previous = parts[index], parts[index - 1]
        if start < previous_start:
            raise TraceError(f"shift {part!r} comes after {previous!r} but starts earlier: expected {SHIFTS_FORM}")
        if start < previous_end:
            raise TraceError(f"shift {part!r} overlaps {previous!r}: expected {SHIFTS_FORM}")
    if spans[-1][1] > spans[0][0] + 24.0:
        raise TraceError(f"shift {parts[-1]!r} runs into {parts[0]!r} the next day: expected {SHIFTS_FORM}")
    return spans


def _clock(text: str) -> float | None:
    """Hours of 'HH:MM' (00:00 to 24:00), or None."""
    match = _CLOCK.match(text.strip())
    if match is None:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        return None
    return hours + minutes / 60.0


def rate_trace(images_per_hour: float, *, shifts: Sequence[tuple[float, float]] | None = None,
               days: int = 1, seed: int = 7) -> list[float]:
    """Poisson arrivals at a steady rate during the given shift hours (all day without)."""
    if images_per_hour <= 0:
        raise TraceError(f"arrival rate must be positive, got {images_per_hour}")
    rng = random.Random(seed)
    spans = list(shifts) if shifts else [(0.0, 24.0)]
    arrivals: list[float] = []
    for day in range(-1, days):
        for start, end in spans:
            arrivals += _poisson_times(rng, day * DAY + start * HOUR, day * DAY + end * HOUR,
                                       images_per_hour)
    return sorted(t for t in arrivals if 0.0 <= t < days * DAY)


def write_trace(path: Path, arrivals: Iterable[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        f.write(CSV_HEADER + "\n")
        for t in arrivals:
            f.write(f"{t:.3f}\n")


def read_trace(path: Path) -> list[float]:
    """Arrival timestamps in seconds, first CSV column; a header line and '#' comments are skipped.

    Times may be relative (seconds from the start of the day) or absolute (Unix seconds):
    the trace is shifted so that its first day starts at 00:00 UTC of the first arrival.
    """
    arrivals: list[float] = []
    with path.open(newline="") as f:
        try:
            rows = list(csv.reader(f))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise TraceError(f"{path}: not a CSV text file ({exc}); expected arrival times in seconds, "
                             "one per line") from None
        for number, row in enumerate(rows, start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            try:
                value = float(row[0])
            except ValueError:
                if number == 1:
                    continue  # header
                raise TraceError(f"{path}:{number}: {row[0]!r} is not a number of seconds") from None
            if not math.isfinite(value) or value < 0:
                raise TraceError(f"{path}:{number}: arrival time must be a finite number >= 0")
            arrivals.append(value)
    if not arrivals:
        raise TraceError(f"{path}: no arrival times found")
    arrivals.sort()
    origin = math.floor(arrivals[0] / DAY) * DAY
    return [t - origin for t in arrivals]


def horizon(arrivals: Sequence[float]) -> float:
    """Whole days covering the trace: what an always-on model is billed for."""
    return max(1, math.ceil((arrivals[-1] + 1e-9) / DAY)) * DAY if arrivals else DAY
