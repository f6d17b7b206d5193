"""The cost model's simulation: hosted billing, the four hosted policies on the default day, the ASL
walker, traces. Its charges are tested in test_cost_meters.py and test_cost_rows.py, the crossover
in test_cost_crossover.py, bench/cost.py in test_cost_bench.py, the planner in test_plan.py."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from batchsight_tools.costmodel import (
    Billing,
    EdgeBatching,
    ModelService,
    OurPolicy,
    compare,
    default_day,
    rate_trace,
    read_trace,
    write_trace,
)
from batchsight_tools.costmodel.baselines import (
    SEED_KEEP_ALIVE_SECONDS,
    SEED_READINESS_WAIT_SECONDS,
    simulate_always_on,
)
from batchsight_tools.costmodel.edge import submissions
from batchsight_tools.costmodel.compare import GOAL_VS_IDEAL, GOAL_VS_SEED, Comparison
from batchsight_tools.costmodel.engine import Engine, backend_clock
from batchsight_tools.costmodel.options import (
    add_model_arguments,
    backend_summary,
    billing_from,
    service_from,
)
from batchsight_tools.costmodel.pipeline import CloudSettings, Pipeline
from batchsight_tools.costmodel.trace import TraceError, parse_shifts

HOUR = 3600.0
BUDGET = 3600.0
SEED_MINIMUM = SEED_READINESS_WAIT_SECONDS + SEED_KEEP_ALIVE_SECONDS  # 79 minutes


def _model_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    return parser.parse_args(argv)


def _compare_day(*argv: str) -> Comparison:
    """The default day as bench/cost.py and ``batchsight plan`` see it with these options."""
    args = _model_args(*argv)
    return compare(default_day(), budget_seconds=BUDGET, service=service_from(args),
                   billing=billing_from(args))


@pytest.fixture(scope="module")
def default_comparison() -> Comparison:
    return _compare_day()  # no options: the sagemaker preset


# --- billing ----------------------------------------------------------------------------------------

def test_billing_charges_every_started_minute_per_unit() -> None:
    billing = Billing(price_per_unit_hour=4.0)
    assert billing.billed_seconds([(0.0, 60.0)]) == 60.0
    assert billing.billed_seconds([(0.0, 60.5)]) == 120.0
    assert billing.billed_seconds([(0.0, 1.0), (100.0, 101.0)]) == 120.0  # each hosting rounds up
    assert billing.billed_seconds([(5.0, 5.0)]) == 0.0
    assert billing.cost([(0.0, 3600.0)]) == pytest.approx(4.0)
    two_units = Billing(price_per_unit_hour=4.0, units=2)
    assert two_units.model_hours([(0.0, 1800.0)]) == pytest.approx(1.0)
    assert two_units.cost([(0.0, 1800.0)]) == pytest.approx(4.0)  # 2 units x half an hour


# --- the four policies ------------------------------------------------------------------------------

def test_always_on_costs_the_length_of_the_day(default_comparison) -> None:  # type: ignore[no-untyped-def]
    always_on = default_comparison.rows["always-on"]
    assert always_on.billed_hours(default_comparison.billing) == 24.0
    two_days = simulate_always_on(rate_trace(50, days=2), ModelService())
    assert two_days.billed_hours(Billing()) == 48.0


@pytest.mark.parametrize("trace", ["default", "sparse", "one-shift"])
def test_the_ideal_is_never_above_any_policy(trace: str, default_comparison) -> None:  # type: ignore[no-untyped-def]
    if trace == "default":
        comparison = default_comparison
    elif trace == "sparse":
        comparison = compare([h * HOUR + 17.0 for h in (1, 5, 9, 13, 17, 21)], budget_seconds=BUDGET)
    else:
        comparison = compare(rate_trace(300, shifts=[(6.0, 14.0)]), budget_seconds=BUDGET)
    ideal = comparison.hours("ideal")
    for name in ("always-on", "seed-hourly", "batchsight"):
        assert ideal <= comparison.hours(name), name
    assert comparison.rows["ideal"].max_latency <= BUDGET + 1e-6


def test_the_seed_hosts_every_batch_for_at_least_79_minutes(default_comparison) -> None:  # type: ignore[no-untyped-def]
    seed = default_comparison.rows["seed-hourly"]
    assert seed.intervals
    assert all(stop - start >= SEED_MINIMUM for start, stop in seed.intervals)
    one_image = compare([HOUR / 2], budget_seconds=BUDGET)
    assert one_image.hours("seed-hourly") >= SEED_MINIMUM / HOUR  # a single image costs ~1.3 h
    assert one_image.hours("batchsight") < 0.5


def test_batchsight_meets_its_latency_budget(default_comparison) -> None:  # type: ignore[no-untyped-def]
    ours = default_comparison.rows["batchsight"]
    assert len(ours.latencies) == len(default_day())
    assert ours.max_latency <= BUDGET
    assert not ours.notes  # no takeovers, nothing left hosted, nothing unprocessed
    assert ours.executions.get("BatchFailed", 0) == 0 and ours.executions.get("LockLost", 0) == 0


def test_the_default_sagemaker_preset_meets_both_goals(default_comparison) -> None:  # type: ignore[no-untyped-def]
    assert default_comparison.ours_to_ideal <= GOAL_VS_IDEAL
    assert default_comparison.seed_to_ours >= GOAL_VS_SEED


def test_at_lookout_for_visions_start_range_no_policy_is_3x_below_the_seed() -> None:
    """10-20 min starts: batchsight stays near the ideal, but even the ideal misses the 3x goal."""
    comparison = _compare_day("--backend", "lookoutvision")
    assert comparison.ours_to_ideal <= GOAL_VS_IDEAL
    assert comparison.hours("seed-hourly") / comparison.hours("ideal") < GOAL_VS_SEED


def test_without_the_follow_trigger_each_start_serves_less(default_comparison) -> None:  # type: ignore[no-untyped-def]
    from batchsight_tools.costmodel.pipeline import simulate_ours

    service = service_from(_model_args())
    without = simulate_ours(default_day(), default_comparison.policy, service, follow_on=False)
    assert without.billed_hours(default_comparison.billing) > default_comparison.hours("batchsight")


def test_batchsight_beats_the_seed_and_always_on(default_comparison) -> None:  # type: ignore[no-untyped-def]
    assert default_comparison.seed_to_ours > 1.5
    assert default_comparison.hours("batchsight") < default_comparison.hours("always-on") / 2


# --- the backend presets and their overrides --------------------------------------------------------

def test_start_minutes_and_price_override_the_preset() -> None:
    default = backend_summary(_model_args())
    assert default == "backend sagemaker (start 5-10 min, 0.23 USD per instance-hour)"
    args = _model_args("--backend", "lookoutvision", "--start-minutes", "3", "8", "--price", "1.2")
    assert service_from(args).start_minutes == (3.0, 8.0)
    assert billing_from(args).price_per_unit_hour == 1.2
    assert backend_summary(args) == ("backend lookoutvision (start 3-8 min from --start-minutes, "
                                     "1.2 USD per inference-unit hour from --price)")
    price_only = _model_args("--price", "0.5")
    assert service_from(price_only).start_minutes == (5.0, 10.0)
    assert billing_from(price_only).price_per_unit_hour == 0.5


def test_an_unknown_backend_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as refused:
        _model_args("--backend", "rekognition")
    assert refused.value.code == 2
    assert "invalid choice: 'rekognition'" in capsys.readouterr().err


# --- the real decisions: BatchPolicy and the ASL -----------------------------------------------------

def test_edge_cuts_come_from_the_gateways_batch_policy() -> None:
    burst = [10.0 + i * 0.01 for i in range(700)]
    subs = submissions(burst, EdgeBatching(max_age_seconds=600, interval_seconds=86_400, max_images=300))
    assert [s.trigger for s in subs] == ["size", "size", "age"]
    assert [len(s.images) for s in subs] == [300, 300, 100]
    assert subs[2].cut_at == pytest.approx(burst[600] + 600, abs=1.0)


def _walk(service: ModelService, *, images: int = 25,
          cloud: CloudSettings | None = None):  # type: ignore[no-untyped-def]
    engine = Engine()
    pipeline = Pipeline(engine, service, cloud or CloudSettings(poll_seconds=15, lock_lease_seconds=2400))
    for i in range(images):
        pipeline.queue.put(i, 0.0)
    pipeline.start_execution("gateway-1", {"v": 1, "trigger": "edge"})
    with backend_clock(engine):
        engine.run(limit=86_400.0)
    (outcome,) = pipeline.outcomes
    return outcome, pipeline


def test_walker_reaches_stop_model_on_the_normal_path() -> None:
    outcome, pipeline = _walk(ModelService())
    assert outcome.status == "SUCCEEDED" and outcome.end_state == "Done"
    assert outcome.visited("StopModel") and not outcome.visited("StopModelAfterFailure")
    assert [name for _, name in outcome.path[:5]] == ["IsHandOver", "CheckWork", "AnyWork", "AcquireLock",
                                                     "LockAcquired"]
    assert pipeline.queue.pending == 0 and pipeline.hosting.status == "STOPPED"
    (start, stop), = pipeline.hosting.intervals
    assert 600 <= stop - start <= 1200 + 60  # the start, one poll, a few seconds of drain


def test_walker_stops_the_model_after_a_hosting_failure() -> None:
    outcome, pipeline = _walk(ModelService(fails=True))
    assert outcome.status == "FAILED" and outcome.end_state == "BatchFailed"
    assert outcome.visited("HostingFailed") and outcome.visited("StopModelAfterFailure")
    assert not outcome.visited("Drain")
    assert pipeline.hosting.status == "STOPPED" and len(pipeline.hosting.intervals) == 1


def test_the_backend_start_timeout_runs_on_the_virtual_clock() -> None:
    cloud = CloudSettings(poll_seconds=30, start_timeout_seconds=600, lock_lease_seconds=2400)
    outcome, pipeline = _walk(ModelService(start_minutes=(15.0, 15.0)), cloud=cloud)
    assert outcome.end_state == "BatchFailed" and outcome.visited("StopModelAfterFailure")
    (start, stop), = pipeline.hosting.intervals
    assert 600 <= stop - start <= 700  # TIMED_OUT at the first poll after 600 s, then stopped


def test_an_empty_queue_never_starts_the_model() -> None:
    outcome, pipeline = _walk(ModelService(), images=0)
    assert outcome.end_state == "NoWork" and pipeline.hosting.starts == 0


def test_the_walker_refuses_constructs_it_does_not_model() -> None:
    import copy

    from batchsight_tools.costmodel.asl import UnsupportedAsl
    from batchsight_tools.costmodel.pipeline import load_definition

    definition = copy.deepcopy(load_definition())
    definition["States"]["AnyWork"]["Choices"][0] = {"Variable": "$.work.visible", "NumericLessThan": 1,
                                                     "Next": "NoWork"}
    engine = Engine()
    pipeline = Pipeline(engine, ModelService(), CloudSettings())
    pipeline.machine.definition = definition
    pipeline.start_execution("gateway-1", {"v": 1})
    with pytest.raises(UnsupportedAsl, match="NumericLessThan"):
        engine.run()


def test_planned_lock_lease_outlasts_the_slowest_start() -> None:
    from batchsight_tools.costmodel.planner import cloud_settings

    for start in ((10.0, 20.0), (3.0, 8.0), (30.0, 45.0)):
        cloud = cloud_settings(ModelService(start_minutes=start))
        assert cloud.start_timeout_seconds > start[1] * 60
        assert cloud.lock_lease_seconds > cloud.start_timeout_seconds + cloud.poll_seconds


# --- traces --------------------------------------------------------------------------------------------

def test_trace_csv_round_trip(tmp_path: Path) -> None:
    arrivals = default_day()[:500]
    path = tmp_path / "arrivals.csv"
    write_trace(path, arrivals)
    assert read_trace(path) == pytest.approx(arrivals, abs=1e-3)


def test_trace_files_accept_absolute_times_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "unix.csv"
    day = 1_767_571_200  # 2026-01-05T00:00:00Z
    path.write_text(f"# camera 3\n{day + 7200.5},cam3\n{day + 3600}\n\n")
    assert read_trace(path) == [3600.0, 7200.5]
    path.write_text("arrival_seconds\n12\nlate\n")
    with pytest.raises(TraceError, match=":3:"):
        read_trace(path)


def test_shifts_are_clock_times_in_the_order_of_the_day() -> None:
    assert parse_shifts("06:00-14:00,14:00-22:00,22:00-06:00") == [(6.0, 14.0), (14.0, 22.0), (22.0, 30.0)]
    assert parse_shifts(" 6:30-14:15 ,") == [(6.5, 14.25)] and parse_shifts("00:00-24:00") == [(0.0, 24.0)]
    night = rate_trace(400, shifts=parse_shifts("22:00-06:00"))   # wraps: 00:00-06:00 and 22:00-24:00
    assert night and all(t < 6 * HOUR or t >= 22 * HOUR for t in night)
    for wrong, says in (("6-14", "expected HH:MM-HH:MM"), ("14:00-22:00,06:00-14:00", "starts earlier"),
                        ("06:00-14:00,13:00-20:00", "overlaps"), ("02:00-06:00,22:00-03:00", "next day"),
                        ("08:00-08:00", "ends when it starts"), ("24:00-06:00", "24-hour clock"), ("", "no shifts")):
        with pytest.raises(TraceError, match=says):
            parse_shifts(wrong)


def test_default_day_is_three_shifts_of_thousands_of_images() -> None:
    arrivals = default_day()
    assert arrivals == sorted(arrivals) and arrivals[0] >= 0 and arrivals[-1] < 24 * HOUR
    assert 6_000 < len(arrivals) < 15_000
    assert default_day() == arrivals  # seeded


def test_a_given_policy_is_simulated_as_given() -> None:
    policy = OurPolicy(batching=EdgeBatching(max_age_seconds=1800, interval_seconds=86_400, max_images=5000))
    comparison = compare(rate_trace(300, shifts=[(6.0, 10.0)]), budget_seconds=BUDGET, policy=policy)
    assert comparison.policy is policy
    assert comparison.rows["batchsight"].starts >= 4
