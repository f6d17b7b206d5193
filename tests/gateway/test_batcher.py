"""batcher.py: when a batch is due (size, age, interval) and what its id looks like."""
from __future__ import annotations

import re
from datetime import datetime, UTC

from batchsight.batcher import BatchPolicy, new_batch_id
from batchsight.config import BatchSettings, config_from_dict

SETTINGS = BatchSettings(interval_seconds=3600.0, max_images=10, max_age_seconds=900.0)
T0 = 1_700_000_000.0
EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def policy(last_cut: float = T0) -> BatchPolicy:
    return BatchPolicy(SETTINGS, last_cut=last_cut)


# --- due ------------------------------------------------------------------------------------------

def test_nothing_waiting_is_never_due() -> None:
    p = policy()
    far_future = T0 + 10 * 86400
    assert p.due(waiting=0, oldest_seen=None, now=far_future) is None
    assert p.due(waiting=0, oldest_seen=T0 - 86400, now=far_future) is None  # stale oldest, empty backlog


def test_no_oldest_time_is_not_due() -> None:
    assert policy().due(waiting=5, oldest_seen=None, now=T0 + 86400) is None


def test_fresh_small_backlog_is_not_due() -> None:
    assert policy().due(waiting=9, oldest_seen=T0 + 10, now=T0 + 20) is None


def test_size_trigger() -> None:
    p = policy()
    assert p.due(waiting=10, oldest_seen=T0 + 1, now=T0 + 2) == "size"
    assert p.due(waiting=11, oldest_seen=T0 + 1, now=T0 + 2) == "size"
    assert p.due(waiting=9, oldest_seen=T0 + 1, now=T0 + 2) is None


def test_age_trigger_at_exactly_max_age() -> None:
    p = policy()
    oldest = T0 + 100
    assert p.due(waiting=1, oldest_seen=oldest, now=oldest + 900) == "age"
    assert p.due(waiting=1, oldest_seen=oldest, now=oldest + 899.999) is None


def test_interval_trigger_at_exactly_the_interval() -> None:
    p = policy()
    # the oldest image is young, but the schedule has come round
    assert p.due(waiting=1, oldest_seen=T0 + 3590, now=T0 + 3600) == "interval"
    assert p.due(waiting=1, oldest_seen=T0 + 3590, now=T0 + 3599.5) is None


def test_precedence_size_then_age_then_interval() -> None:
    p = policy()
    now = T0 + 7200
    old = now - 1000
    assert p.due(waiting=10, oldest_seen=old, now=now) == "size"       # all three hold
    assert p.due(waiting=1, oldest_seen=old, now=now) == "age"         # age and interval hold
    assert p.due(waiting=1, oldest_seen=now - 1, now=now) == "interval"


def test_a_clock_set_back_times_the_interval_from_now_not_from_the_future() -> None:
    p = policy()  # last cut at T0; then the clock is set back two hours
    back = T0 - 7200
    assert p.due(waiting=1, oldest_seen=back + 1, now=back + 2) is None
    assert p.last_cut == back + 2
    assert p.due(waiting=1, oldest_seen=back + 3000, now=back + 3602) == "interval"  # not at T0 + 3600


def test_images_seen_in_the_future_go_at_once_when_the_clock_was_set_back() -> None:
    p = policy()
    seen = T0 + 100  # journaled before the clock was set back two hours
    assert p.due(waiting=1, oldest_seen=seen, now=seen - 7200) == "clock"


def test_a_small_clock_step_only_delays_the_age_trigger() -> None:
    p = policy()
    seen = T0 + 100
    assert p.due(waiting=1, oldest_seen=seen, now=seen - 30) is None  # within CLOCK_STEP_SECONDS
    assert p.due(waiting=1, oldest_seen=seen, now=seen + 900) == "age"


def test_last_cut_moves_the_schedule() -> None:
    p = policy()
    now = T0 + 3600
    assert p.due(waiting=1, oldest_seen=now - 1, now=now) == "interval"
    p.last_cut = now
    assert p.due(waiting=1, oldest_seen=now - 1, now=now + 1) is None
    assert p.due(waiting=1, oldest_seen=now + 3500, now=now + 3600) == "interval"


def test_due_is_pure() -> None:
    p = policy()
    for _ in range(3):
        assert p.due(waiting=10, oldest_seen=T0, now=T0 + 1) == "size"
    assert p.last_cut == T0
    assert p.settings == SETTINGS


def test_virtual_clock_hourly_schedule() -> None:
    """Driven on a virtual clock like the cost model: a trickle of images cuts once per interval."""
    p = BatchPolicy(BatchSettings(interval_seconds=3600, max_images=500, max_age_seconds=7200), last_cut=0.0)
    cuts: list[tuple[float, str]] = []
    oldest: float | None = None
    waiting = 0
    for now in range(0, 4 * 3600 + 1, 60):
        waiting += 1
        oldest = oldest if oldest is not None else float(now)
        trigger = p.due(waiting=waiting, oldest_seen=oldest, now=float(now))
        if trigger:
            cuts.append((float(now), trigger))
            p.last_cut, waiting, oldest = float(now), 0, None
    assert cuts == [(3600.0, "interval"), (7200.0, "interval"), (10800.0, "interval"), (14400.0, "interval")]


# --- batch ids ------------------------------------------------------------------------------------

def test_batch_id_is_a_valid_execution_name() -> None:
    batch_id = new_batch_id("gateway1", T0)
    assert EXECUTION_NAME.match(batch_id), batch_id
    stamp = datetime.fromtimestamp(T0, UTC).strftime("%Y%m%dT%H%M%SZ")
    assert batch_id.startswith(f"gateway1-{stamp}-")


def test_longest_device_name_still_fits_80_chars() -> None:
    device = "d" * 64  # the longest the configuration accepts
    batch_id = new_batch_id(device, T0)
    assert len(batch_id) <= 80
    assert EXECUTION_NAME.match(batch_id)


def test_batch_ids_are_unique_even_within_one_second() -> None:
    ids = {new_batch_id("gw", T0) for _ in range(2000)}
    assert len(ids) == 2000


def test_batch_ids_sort_by_time_for_one_device() -> None:
    times = [T0, T0 + 1, T0 + 59, T0 + 3600, T0 + 86400 * 40]
    ids = [new_batch_id("gw", t) for t in times]
    assert ids == sorted(ids)


def test_batch_id_for_every_accepted_identity_character() -> None:
    config = config_from_dict({"device": "Gate_way-1", "aws": {
        "source_bucket": "s", "final_bucket": "f", "queue_url": "q", "state_machine_arn": "a"}})
    assert EXECUTION_NAME.match(new_batch_id(config.device, T0))


def test_device_with_a_dot_gives_a_valid_execution_name() -> None:
    config = config_from_dict({"device": "gw.line-3.cam", "aws": {
        "source_bucket": "s", "final_bucket": "f", "queue_url": "q", "state_machine_arn": "a"}})
    batch_id = new_batch_id(config.device, T0)
    assert EXECUTION_NAME.match(batch_id)
    assert batch_id.startswith("gw_line-3_cam-")


def test_longest_dotted_device_name_still_fits() -> None:
    batch_id = new_batch_id("." * 64, T0)
    assert EXECUTION_NAME.match(batch_id) and len(batch_id) <= 80
