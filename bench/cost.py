"""What a deployment pays a day to judge its images, every charge counted: one row per backend and policy.

A discrete-event simulation on a virtual clock (batchsight_tools.costmodel) runs the gateway's own
BatchPolicy and the real state machine (cloud/statemachine/batch_pipeline.asl.json) on one arrival
trace, charges every call at the list prices in costmodel/prices.json (Lambda, Step Functions, S3,
SQS, SNS, DynamoDB, CloudWatch, KMS, data transfer, the model's hosting), and prints as markdown:

  - one row per backend and policy: the hosted backend (sagemaker unless --backend) kept up all day
    and run on the AWS sample's hourly schedule, batchsight's start/stop plan and the ideal
    start/stop schedule for the budget; the serverless SageMaker endpoint and the lambda backend
    (the detector in the drain function) planned for the median target and for the budget; and
    the floor (one PUT of the image and one of the result, the detector's CPU on Lambda arm64);
    each with its cost per day and per 1,000 images, its ratio to the floor, and its latency
    from the drop to the result on the gateway (p50, p95, max) and in the cloud (p50);
  - the goals and whether they are met, with the stack's fixed monthly charges (dashboard, alarms,
    key, metrics) and per image without them, which do not grow with images and which a site's
    lines share (--lines: one line's share on a stack of that many lines); where the money goes
    for the best rows;
  - the batch-age trade-off of the lambda backend (executions against latency);
  - the steady arrival rate above which a SageMaker endpoint costs less than the lambda backend;
  - the hosted policies' model-hours, and the start/stop plan with the trace split over 1, 10 and 40
    gateways sharing the model, with the pipeline's hosting notices (results pushed) and without;
  - then, when matplotlib is installed (pip install -e '.[bench]'), a plot of the hosted
    policies' intervals and latencies.

    python bench/cost.py                        # the default day: 60-minute budget, 10-second median
    python bench/cost.py --detector-ms 20 --p50-seconds 30
    python bench/cost.py --crossover            # only the crossover rates (a second)
    python bench/cost.py --lines 12             # the goals also for one line of a 12-line site
    python bench/cost.py --trace arrivals.csv --budget-minutes 90 --start-minutes 3 8 --price 0.5
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from batchsight_tools.costmodel import BudgetTooSmall, Comparison, default_day, ratio_line, read_trace, table
from batchsight_tools.costmodel import crossover as steady
from batchsight_tools.costmodel.backends import HOSTED_BACKENDS
from batchsight_tools.costmodel.lineup import GOAL_BELOW_START_STOP, GOAL_FLOOR_RATIO, Lineup, build
from batchsight_tools.costmodel.lean import DASHBOARD, MOVE, charged
from batchsight_tools.costmodel.options import (
    HOSTED_DEFAULT,
    add_model_arguments,
    backend_summary,
    billing_from,
    book_from,
    images_from,
    images_summary,
    positive,
    positive_int,
    service_from,
)
from batchsight_tools.costmodel.prices import price_book, with_price
from batchsight_tools.costmodel.report import breakdown_table, duration, prices_line, rows_table, tradeoff_table
from batchsight_tools.costmodel.result_pull import PullSettings
from batchsight_tools.costmodel.rows import Row
from batchsight_tools.costmodel.site import site_goal_line, site_runs, site_table
from batchsight_tools.costmodel.trace import TraceError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIGURE = REPO / "bench" / "figures" / "cost.png"
COLOURS = {"always-on": "#7f7f7f", "seed-hourly": "#d62728", "batchsight": "#1f77b4", "ideal": "#2ca02c"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, backend_default=HOSTED_DEFAULT, backends=HOSTED_BACKENDS,
                        backend_help=f"the hosted backend of the always-on, sample and start/stop rows "
                                     f"(default {HOSTED_DEFAULT})")
    parser.add_argument("--p50-seconds", type=positive, default=10.0,
                        help="the median target the serverless rows are planned for (default 10)")
    parser.add_argument("--lines", type=positive_int, default=1,
                        help="the goals also for one line of a site of this many lines like it on one stack, "
                             "sharing its fixed charges (default 1)")
    parser.add_argument("--crossover", action="store_true",
                        help="print only the steady rates above which an endpoint is cheaper (default: off)")
    parser.add_argument("--out", type=Path, default=DEFAULT_FIGURE,
                        help=f"the plot, written when matplotlib is installed (default "
                             f"{DEFAULT_FIGURE.relative_to(REPO)})")
    parser.add_argument("--no-plot", action="store_true", help="print the tables only (default: off)")
    parser.add_argument("--results-listed", action="store_true",
                        help="the gateway lists S3 for its results every results.poll_seconds, as before results "
                             "were pushed to it (default: off: pushed, listed only as the fallback)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "python bench/cost.py" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv))
    print(f"## Cost of judging images: `{command}`, {date.today().isoformat()}\n")
    print(prices_line(price_book()) + "\n")
    if args.crossover:
        print("\n".join(crossover_lines()))
        return 0
    try:
        arrivals = read_trace(args.trace) if args.trace else default_day(seed=args.seed)
    except (TraceError, OSError) as exc:
        print(f"cost.py: error: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        lineup = build(arrivals, images=images_from(args), budget_seconds=args.budget_minutes * 60.0,
                       p50_seconds=args.p50_seconds, hosted=args.backend, service=service_from(args),
                       billing=billing_from(args), book=book_from(args), drain_cold_seconds=args.cold_start_seconds,
                       results=PullSettings(push=not args.results_listed))
    except BudgetTooSmall as exc:
        print(f"no batching schedule fits: {exc}", file=sys.stderr)
        return 1
    source = str(args.trace) if args.trace else f"the default day (three shifts, seed {args.seed})"
    print(f"trace: {source}, {len(arrivals)} images; budget {args.budget_minutes:g} min, median target "
          f"{args.p50_seconds:g} s; {backend_summary(args)} x {args.units}; {images_summary(args)}; results "
          f"{'listed every results.poll_seconds' if args.results_listed else 'pushed to the gateway'}\n")
    print("\n".join(rows_table([*lineup.rows, lineup.floor], lineup.floor)))
    for row in lineup.rows:
        for note in row.notes:
            print(f"note ({row.backend}, {row.policy}): {note}")
    print("\n" + "\n".join(goal_lines(lineup, lines=args.lines)))
    for title, row in (("the cheapest row", lineup.cheapest), ("the cheapest row within the median target",
                                                               lineup.best)):
        if row is not None:
            print(f"\n### Where the money goes: {title} ({row.backend}, {row.policy}), per day\n")
            print("\n".join(breakdown_table(row)))
    print(f"\n### The batch age against its executions: lambda, results "
          f"{'listed every 10 s' if args.results_listed else 'pushed'} "
          f"(the floor is {lineup.floor.cost_per_day:.3f} USD/day)\n")
    print("\n".join(tradeoff_table(lineup.tradeoff(), lineup.floor)))
    print("\n" + "\n".join(crossover_lines()))
    print("\n### The hosted policies' model-hours\n")
    print("\n".join(table(lineup.comparison)))
    print(ratio_line(lineup.comparison))
    print(f"\n### A site: the day split over gateways sharing the model ({args.backend}, the start/stop plan)\n")
    runs = site_runs(arrivals, lineup.comparison, service_from(args))
    print("\n".join(site_table(runs, lineup.comparison)))
    print("\n" + site_goal_line(runs, lineup.comparison))
    print(f"(simulated and charged in {time.monotonic() - started:.0f} s)")
    if not args.no_plot:
        print(plot_line(lineup.comparison, arrivals, args.out), flush=True)
    return 0


def goal_lines(lineup: Lineup, *, lines: int = 1) -> list[str]:
    """Each goal, met or not, by how much, for the cheapest row and the cheapest within the median
    target: the cost goals with the stack's fixed charges, with all but the dashboard, per image
    without them, and (``lines`` above 1) for one line's share of a site's stack; the latency goal
    in the cloud."""
    floor, start_stop = lineup.floor.cost_per_day, lineup.start_stop
    out = ["### Goals"]
    for title, row in (("cheapest row", lineup.cheapest), ("cheapest row within the median target", lineup.best)):
        if row is None:
            out.append(f"- {title}: none meets the median target of {duration(lineup.target.p50_seconds)}")
            continue
        cases = [(label, getattr(row, cost) - charged(row, items),
                  getattr(start_stop, cost) - charged(start_stop, items))
                 for label, cost, items in (
                     ("with the stack's fixed charges", "cost_per_day", ()),
                     ("deployed with Dashboard=false", "cost_per_day", DASHBOARD),
                     ("deployed with Dashboard=false ImageUpload=final-bucket", "cost_per_day", DASHBOARD + MOVE),
                     ("per image, without them", "variable_per_day", ()),
                     ("per image, without them, ImageUpload=final-bucket", "variable_per_day", MOVE))]
        if lines > 1:
            cases.append((f"one line of {lines} on one stack", row.line_share_per_day(lines),
                          start_stop.line_share_per_day(lines)))
        cloud = row.latency(50, cloud=True) or 0.0
        target = lineup.target.p50_seconds or 0.0
        out.append(f"- {title} ({row.backend}, {row.policy}): p50 {duration(row.latency(50) or 0.0)}, in the cloud "
                   f"{duration(cloud)} (goal <= {duration(target)} in the cloud: {_verdict(cloud <= target)}); "
                   f"fixed charges {row.cost_per_day - row.variable_per_day:.3f} USD/day")
        for label, cost, hosted in cases:
            ratio, below = cost / floor, hosted / cost
            out.append(f"  - {label}: {ratio:.2f}x the floor (goal <= {GOAL_FLOOR_RATIO}: "
                       f"{_verdict(ratio <= GOAL_FLOOR_RATIO)}); {below:.2f}x below batchsight start/stop on "
                       f"{start_stop.backend} (goal >= {GOAL_BELOW_START_STOP:g}: "
                       f"{_verdict(below >= GOAL_BELOW_START_STOP)})")
        out.append(f"  - above the floor: {_largest_extras(row, floor)}")
    return out


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def _largest_extras(row: Row, floor: float) -> str:
    floor_items = ("PUT of the image by the gateway", "PUT of the result")
    charges = [c for c in row.bill.items() if c.line.item not in floor_items]
    top = ", ".join(f"{c.line.service} {c.line.item} {c.usd:.3f}{_why(c.line.item)}" for c in charges[:4])
    return f"{row.cost_per_day - floor:.3f} USD/day, most of it {top}"


def _why(item: str) -> str:
    """What a charge above the floor is there for, where the design chose it."""
    if item == "COPY of the image to the final bucket":
        return " (the image moves next to its result, DESIGN.md; ImageUpload=final-bucket uploads it there instead)"
    return ""


def crossover_lines() -> list[str]:
    book = price_book()
    free_data = with_price(book, "sagemaker.data_processed_gb", 0.0)
    lines = ["### When start/stop hosting still wins: steady arrivals all day, judging costs only",
             "", "| case | lambda | endpoint | cheaper from (images/h): always on | start/stop | "
                 "the same without SageMaker's data charge | Lambda ms/image above which a busy endpoint wins |",
             "|---|---|---|---:|---:|---|---:|"]
    for case in steady.CASES:
        found = [steady.crossover(case, day, b) for b in (book, free_data)
                 for day in (steady.always_on_day, steady.start_stop_day)]
        text = ["never" if f is None else f"{f:,.0f}" for f in found]
        instance = case.instance_price.split(".", 1)[1].rsplit(".", 1)[0]
        lines.append(f"| {case.name} | {case.lambda_memory_mb} MB | {instance} ({case.instance_slots} at a time) | "
                     f"{text[0]} | {text[1]} | always on {text[2]}, start/stop {text[3]} | "
                     f"{steady.break_even_ms(case):.0f} |")
    lines.append(f"\n(up to {steady.MAX_RATE:,.0f} images/h; batches of {steady.STEADY_AGE_SECONDS:g} s for all; "
                 "the result pull and the stack's fixed charges, the same for all, left out)")
    return lines


def plot_line(comparison: Comparison, arrivals: list[float], out: Path) -> str:
    """Plot when matplotlib is there; the line that says where the plot is, or why there is none."""
    try:
        import matplotlib
    except ImportError:
        return "plot: skipped, matplotlib is not installed (pip install -e '.[bench]' for it; --no-plot hides this)"
    matplotlib.use("Agg")
    plot(comparison, arrivals, out)
    return f"plot: {out}"


def plot(comparison: Comparison, arrivals: list[float], out: Path) -> None:
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
