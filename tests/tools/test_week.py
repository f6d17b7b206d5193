"""A day of a 24/7 line with a 3-hour overload on the virtual clock (the week's tool, shortened).

The engine drives the real state machine and the functions' own decisions (check work's plan,
overload control, the hand-over rule); the figures are the ones `python -m
batchsight_tools.costmodel.week` prints for seven days.
"""
from __future__ import annotations

import pytest

from batchsight_pipeline import history
from batchsight_tools.costmodel.asl import Outcome
from batchsight_tools.costmodel.model import ModelService
from batchsight_tools.costmodel.pipeline import Check, load_definition
from batchsight_tools.costmodel.trace import rate_trace
from batchsight_tools.costmodel.week import Overload, alarms_raised, history_events, main, overload_trace, run_week

SERVICE = ModelService(start_minutes=(4.0, 6.0), detect_latency_seconds=0.1, detect_tps=3.0)


def test_a_day_with_an_overload_loses_nothing_scales_alarms_once_and_recovers_within_the_hour() -> None:
    """2 images a second, one unit drains 3, 2 units allowed; 3 hours at three times the rate."""
    figures = run_week(per_hour=7200, service=SERVICE, overload=Overload(start_hour=12, factor=3), days=1,
                       max_scale_units=2)
    assert figures.lost == 0
    assert figures.largest_history < 0.8 * history.QUOTA
    assert figures.most_units == 2, "the overload scaled to the ceiling"
    assert figures.alarms == 1, "saturation at the ceiling raised PipelineOverloadedAlarm, once"
    assert figures.p95_first_hour_after <= 1.5 * figures.p95_before, "latency back to normal within the hour"
    assert figures.recovered_minutes <= 60, "every 10-minute p95 normal again within an hour of the end"
    assert figures.p95_hour_after <= 1.5 * figures.p95_before


def test_an_overload_within_the_ceiling_raises_no_alarm() -> None:
    """Bursts of gateway batches and an overload that two units absorb: scaled, never saturated."""
    figures = run_week(per_hour=3600, service=SERVICE, overload=Overload(start_hour=8, factor=3), days=1,
                       max_scale_units=2)
    assert figures.most_units == 2 and figures.alarms == 0 and figures.lost == 0


def test_a_drain_round_counts_as_history_py_says() -> None:
    """RenewLock, the Map with two workers, CheckRemaining, MoreWork: 16 + 7 per worker (history.py),
    plus the execution's start and end."""
    outcome = Outcome("SUCCEEDED", "Done", path=[(0.0, "RenewLock"), (1.0, "Drain"), (2.0, "CheckRemaining"),
                                                 (3.0, "MoreWork")], map_iterations=2)
    events = history_events(outcome, load_definition()["States"])
    assert events == 2 + history.EVENTS_PER_ROUND + 2 * history.EVENTS_PER_WORKER


def test_the_alarm_is_raised_once_per_spell_and_ignores_periods_without_data() -> None:
    def check(minute: float, saturated: bool, draining: bool = True) -> Check:
        return Check(minute * 60, 100, 2, saturated, draining)

    spell = [check(0, False), check(6, True), check(20, True), check(40, False, draining=False), check(52, True)]
    assert alarms_raised(spell) == 1, "a check that is not draining emits nothing: the alarm stays raised"
    assert alarms_raised(spell + [check(60, False), check(70, True)]) == 2


def test_the_command_refuses_a_bad_value_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--detect-tps", "0"])
    assert "--detect-tps must be above 0" in capsys.readouterr().err


def test_a_factor_of_one_is_no_overload() -> None:
    assert overload_trace(360, Overload(start_hour=1, factor=1), days=1) == rate_trace(360, days=1)
