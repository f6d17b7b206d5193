"""What the OPC UA server keeps of the results, without asyncua: the handshake's counters, the
last results, and the counts per shift.

The ResultReady counter counts results since the server started (UInt32, wrapping); the PLC
writes the value it has acted on into ResultAck, and ``pending`` is how many it has not
acknowledged yet (more than one: it missed some, GetLastResults gives them back).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from batchsight.verdicts import Evaluation, Verdict

COUNTER_MODULO = 2 ** 32


@dataclass
class ShiftTotals:
    start: datetime
    total: int = 0
    ok: int = 0
    ng: int = 0
    not_decidable: int = 0

    def count(self, evaluation: Evaluation) -> None:
        self.total += 1
        if evaluation is Evaluation.OK:
            self.ok += 1
        elif evaluation is Evaluation.NOT_OK:
            self.ng += 1
        else:
            self.not_decidable += 1


def shift_start(now: datetime, starts: list[tuple[int, int]]) -> datetime:
    """The start of the shift ``now`` (local time) falls in: the latest start time at or before it,
    today's or yesterday's."""
    candidates = [day.replace(hour=h, minute=m, second=0, microsecond=0)
                  for day in (now, now - timedelta(days=1)) for h, m in starts]
    return max(c for c in candidates if c <= now)


@dataclass
class ResultBook:
    keep: int
    shifts: list[tuple[int, int]]
    clock: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    counter: int = 0
    ack: int = 0
    last: Verdict | None = None
    previous_shift: ShiftTotals | None = None

    def __post_init__(self) -> None:
        self.recent: deque[Verdict] = deque(maxlen=self.keep)
        self.current_shift = ShiftTotals(shift_start(self.clock(), self.shifts))

    @property
    def pending(self) -> int:
        return (self.counter - self.ack) % COUNTER_MODULO

    def add(self, verdict: Verdict) -> None:
        self.roll()
        self.counter = (self.counter + 1) % COUNTER_MODULO
        self.last = verdict
        self.recent.append(verdict)
        self.current_shift.count(verdict.evaluation)

    def acknowledge(self, value: int) -> None:
        self.ack = value % COUNTER_MODULO

    def roll(self) -> bool:
        """Start a new shift when its time has come; True when it did."""
        start = shift_start(self.clock(), self.shifts)
        if start == self.current_shift.start:
            return False
        self.previous_shift, self.current_shift = self.current_shift, ShiftTotals(start)
        return True

    def find(self, result_id: str) -> Verdict | None:
        """The newest kept verdict on this image (a correction after its first result)."""
        return next((v for v in reversed(self.recent) if v.image_id == result_id), None)

    def last_n(self, count: int) -> list[Verdict]:
        """The last ``count`` verdicts, oldest first (the order a PLC catches up in)."""
        if count <= 0:
            return []
        return list(self.recent)[-count:]

    def reconfigure(self, keep: int, shifts: list[tuple[int, int]]) -> None:
        if keep != self.keep:
            self.keep, self.recent = keep, deque(self.recent, maxlen=keep)
        if shifts != self.shifts:
            self.shifts = shifts
            self.roll()
