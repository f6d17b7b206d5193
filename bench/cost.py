"""Hosting cost and image latency of four policies on one arrival trace (issue 7, the cost model).

A discrete-event simulation on a virtual clock (batchsight_tools.costmodel) runs, on the
same trace and the same seeded model start times:

  always-on     the model hosted all day, images analysed as they arrive;
  seed-hourly   the AWS sample's policy: hourly trigger, fixed 20-minute readiness wait,
                59-minute keep-alive loop, then stop;
  batchsight    the gateway's own BatchPolicy cutting batches, replayed into the real state
                machine (cloud/statemachine/batch_pipeline.asl.json walked state by state),
                with the settings ``batchsight plan`` suggests for the latency budget;
  ideal         the least hosted time that still answers every image within the budget.

It prints one row per policy (billed model-hours, cost, starts, drop-to-result latency
p50/p95/max), then the two ratios (batchsight to the ideal, the seed to batchsight), and
writes a plot of the hosted intervals and the latency distributions.

The model's start time and price come from a backend preset (--backend, default sagemaker as in
cloud/template.yaml); they are published or estimated figures, so pass your own measured
--start-minutes and --price.

    python bench/cost.py                              # the default day, 60-minute budget, SageMaker
    python bench/cost.py --backend lookoutvision      # Lookout for Vision's 10-20 min, 4 USD/h
    python bench/cost.py --trace arrivals.csv --budget-minutes 90 --start-minutes 3 8 --price 0.5
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from batchsight_tools.costmodel import (
    BudgetTooSmall,
    Comparison,
    compare,
    default_day,
    ratio_line,
    read_trace,
    table,
)
from batchsight_tools.costmodel.options import (
    add_model_arguments,
    backend_summary,
    billing_from,
    service_from,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIGURE = REPO / "bench" / "figures" / "cost.png"
COLOURS = {"always-on": "#7f7f7f", "seed-hourly": "#d62728", "batchsight": "#1f77b4", "ideal": "#2ca02c"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    parser.add_argument("--out", type=Path, default=DEFAULT_FIGURE,
                        help=f"plot (default {DEFAULT_FIGURE.relative_to(REPO)})")
    parser.add_argument("--no-plot", action="store_true", help="print the table only")
    args = parser.parse_args(argv)

    arrivals = read_trace(args.trace) if args.trace else default_day(seed=args.seed)
    service, billing = service_from(args), billing_from(args)
    budget = args.budget_minutes * 60.0
    try:
        comparison = compare(arrivals, budget_seconds=budget, service=service, billing=billing)
    except BudgetTooSmall as exc:
        print(f"no batching schedule fits: {exc}", file=sys.stderr)
        return 1
    source = str(args.trace) if args.trace else f"default day (three shifts, seed {args.seed})"
    batch, cloud = comparison.policy.batching, comparison.policy.cloud
    print(f"trace: {source}, {len(arrivals)} images; budget {args.budget_minutes:g} min; "
          f"{backend_summary(args)} x {billing.units}; detect {service.detect_latency_seconds:g} s, "
          f"cap {service.detect_tps:g}/s")
    print(f"batchsight settings: batch.max_age_seconds={batch.max_age_seconds:.0f} "
          f"batch.interval_seconds={batch.interval_seconds:.0f} batch.max_images={batch.max_images}; "
          f"PollSeconds={cloud.poll_seconds} StartTimeoutSeconds={cloud.start_timeout_seconds} "
          f"LockLeaseSeconds={cloud.lock_lease_seconds} DrainWorkers={cloud.drain_workers} "
          f"DetectConcurrency={cloud.detect_concurrency}")
    for result in comparison.rows.values():
        for note in result.notes:
            print(f"note ({result.name}): {note}")
    if not args.no_plot:
        plot(comparison, arrivals, args.out)
        print(f"plot: {args.out}")
    print()
    print("\n".join(table(comparison)))
    print(ratio_line(comparison))
    return 0


def plot(comparison: Comparison, arrivals: list[float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = comparison.rows["always-on"].horizon / 3600.0
    fig, (rate, hosted, latency) = plt.subplots(
        3, 1, figsize=(11, 8), gridspec_kw={"height_ratios": [1, 1.3, 1.6]})
    bins = [h / 6 for h in range(int(days * 6) + 1)]
    rate.hist([t / 3600 for t in arrivals], bins=bins, color="#555555")
    rate.set_ylabel("images / 10 min")
    rate.set_xlim(0, days)
    rate.set_title("Arrivals, hosted model intervals and drop-to-result latency")
    names = list(comparison.rows)
    for lane, name in enumerate(names):
        result = comparison.rows[name]
        spans = [(a / 3600, (b - a) / 3600) for a, b in result.intervals]
        hosted.broken_barh(spans, (lane - 0.35, 0.7), color=COLOURS.get(name, "#333333"))
        hosted.text(days + 0.1, lane, f"{result.billed_hours(comparison.billing):.1f} h",
                    va="center", fontsize=8)
    hosted.set_yticks(range(len(names)), names)
    hosted.set_xlim(0, days)
    hosted.set_xlabel("hour of the trace")
    hosted.invert_yaxis()
    for name in names:
        values = sorted(v / 60 for v in comparison.rows[name].latencies)
        if values:
            fractions = [(k + 1) / len(values) for k in range(len(values))]
            latency.step(values, fractions, where="post", label=name, color=COLOURS.get(name))
    latency.axvline(comparison.budget_seconds / 60, color="black", linestyle="--", linewidth=1,
                    label="budget")
    latency.set_xlabel("latency, drop to result (minutes)")
    latency.set_ylabel("fraction of images")
    latency.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
