"""``batchsight plan``: batch settings for a latency budget, and what they are expected to cost.

Give an arrival rate (images per hour, optionally only during shift hours) or a trace file
(arrival times in seconds, CSV), and a latency budget. The plan sets the gateway's age
trigger to what the budget leaves after the upload, the slowest model start, one readiness
poll and the drain; simulates a day on the real batching code and state machine (the cost
model, batchsight_tools.costmodel); tightens the settings until every image meets the
budget; and prints the settings with the expected model-hours, cost and latency, next to an
always-on model, the AWS sample's hourly policy and the ideal schedule.

    batchsight plan --rate 500 --shifts 06:00-14:00,14:00-22:00 --budget-minutes 60
    batchsight plan --trace arrivals.csv --budget-minutes 120 --start-minutes 4 8 --price 1.2
    batchsight plan --rate 500 --backend lookoutvision
"""
from __future__ import annotations

import argparse
import sys

from batchsight_tools.costmodel import BudgetTooSmall, compare, rate_trace, read_trace, table
from batchsight_tools.costmodel.options import (
    add_model_arguments,
    backend_summary,
    billing_from,
    service_from,
)
from batchsight_tools.costmodel.trace import TraceError, horizon, parse_shifts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchsight plan",
        description="Suggest batch settings for a latency budget and show what they are expected "
                    "to cost, simulated on the real batching code and state machine.",
        epilog="Without --rate or --trace the plan uses the default day of the cost model "
               "(three shifts with breaks and a bursty camera).")
    parser.add_argument("--rate", type=float, metavar="IMAGES_PER_HOUR",
                        help="steady arrival rate while the line runs")
    parser.add_argument("--shifts", metavar="HH:MM-HH:MM[,...]",
                        help="hours the line runs, e.g. 06:00-14:00,14:00-22:00 (default: all day)")
    add_model_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.rate is not None and args.trace is not None:
        parser.error("give --rate or --trace, not both")
    if args.shifts and args.rate is None:
        parser.error("--shifts goes with --rate")
    try:
        if args.trace is not None:
            arrivals, source = read_trace(args.trace), str(args.trace)
        elif args.rate is not None:
            shifts = parse_shifts(args.shifts) if args.shifts else None
            arrivals = rate_trace(args.rate, shifts=shifts, seed=args.seed)
            source = f"{args.rate:g} images/h" + (f" during {args.shifts}" if args.shifts else ", all day")
        else:
            from batchsight_tools.costmodel import default_day

            arrivals, source = default_day(seed=args.seed), "the default day (three shifts)"
    except (TraceError, OSError) as exc:
        print(f"batchsight plan: {exc}", file=sys.stderr)
        return 2
    if not arrivals:
        print("batchsight plan: the trace has no images; nothing to host", file=sys.stderr)
        return 2
    service, billing = service_from(args), billing_from(args)
    budget = args.budget_minutes * 60.0
    days = horizon(arrivals) / 86_400.0
    print(f"Trace: {source}: {len(arrivals)} images over {days:g} day(s)")
    print(f"Budget {args.budget_minutes:g} min from drop to result; {backend_summary(args)} x "
          f"{billing.units}; detect {service.detect_latency_seconds:g} s, up to {service.detect_tps:g}/s")
    try:
        comparison = compare(arrivals, budget_seconds=budget, service=service, billing=billing)
    except BudgetTooSmall as exc:
        print(f"\nNo batch schedule meets this budget: {exc}.")
        hours = 24.0 * billing.units
        print(f"Always on: {hours:.1f} model-hours, {hours * billing.price_per_unit_hour:.2f} USD per day.")
        return 1
    ours = comparison.rows["batchsight"]
    batch, cloud = comparison.policy.batching, comparison.policy.cloud
    print("\nEdge (component configuration):")
    print("  batch:")
    print(f"    max_age_seconds: {batch.max_age_seconds:.0f}    # cut when the oldest image is this old")
    print(f"    max_images: {batch.max_images}           # above the busiest batch, so age decides")
    print(f"    interval_seconds: {batch.interval_seconds:.0f}  # from the last cut; kept out of the way")
    print("\nCloud (sam deploy --parameter-overrides):")
    print(f"  PollSeconds={cloud.poll_seconds} StartTimeoutSeconds={cloud.start_timeout_seconds} "
          f"LockLeaseSeconds={cloud.lock_lease_seconds} DrainWorkers={cloud.drain_workers} "
          f"DetectConcurrency={cloud.detect_concurrency} DetectTps={service.detect_tps:g}")
    hours = ours.billed_hours(billing) / days
    cost = ours.cost(billing) / days
    print(f"\nExpected per day: {hours:.2f} model-hours, {cost:.2f} USD ({30 * cost:,.0f} USD per 30 days), "
          f"{ours.starts / days:.0f} model starts")
    print(f"Latency, drop to result: p50 {ours.percentile(50) / 60:.1f} min, p95 "
          f"{ours.percentile(95) / 60:.1f} min, max {ours.max_latency / 60:.1f} min")
    if ours.max_latency > budget:
        print("WARNING: the simulated maximum exceeds the budget; the trace is burstier than "
              "the settings can absorb (raise DetectTps or the budget)")
    for note in ours.notes:
        print(f"note: {note}")
    print(f"\nOn the same trace ({days:g} day(s)):")
    print("\n".join("  " + line for line in table(comparison)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
