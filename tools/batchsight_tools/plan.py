"""``batchsight plan``: the backend and batch settings for a latency budget, and their monthly bill.

Give an arrival rate (images per hour, optionally only during shift hours) or a trace file
(arrival times in seconds, CSV), the detector's time per image and a latency budget (every
image within ``--budget-minutes``; half within ``--p50-seconds`` when given). The plan
simulates each of the template's backends on the real batching code and state machine (the
cost model, batchsight_tools.costmodel), charges every request at the list prices in
costmodel/prices.json, and recommends the cheapest that meets the budget: its
``sam deploy --parameter-overrides`` line, the gateway's ``batch.*`` and ``results.*``
settings, and the expected bill by service.

    batchsight plan --rate 500 --shifts 06:00-14:00,14:00-22:00 --budget-minutes 60
    batchsight plan --detector-ms 44 --p50-seconds 10
    batchsight plan --trace arrivals.csv --backend sagemaker --start-minutes 4 8 --price 1.2
"""
from __future__ import annotations

import argparse
import sys

from batchsight_tools.costmodel import BudgetTooSmall, rate_trace, read_trace
from batchsight_tools.costmodel.backends import PRESETS
from batchsight_tools.costmodel.floor import floor_usage
from batchsight_tools.costmodel.lean import OPTIONS, charged
from batchsight_tools.costmodel.options import (
    add_model_arguments,
    backend_summary,
    billing_from,
    book_from,
    hosted_name,
    images_from,
    images_summary,
    positive,
    service_from,
)
from batchsight_tools.costmodel.recommend import NOT_BY_DEFAULT, Recommendation, candidates, recommend
from batchsight_tools.costmodel.report import duration, markdown, usd
from batchsight_tools.costmodel.rows import Row
from batchsight_tools.costmodel.search import Target
from batchsight_tools.costmodel.trace import TraceError, horizon, parse_shifts

GATEWAY_COMMENTS = {
    "batch.max_age_seconds": "cut when the oldest image is this old",
    "batch.max_images": "above the busiest batch, so age decides",
    "batch.interval_seconds": "from the last cut; kept out of the way",
    "batch.follow": "cut again when a first result shows a hosted model up",
    "results.poll_seconds": "how often the gateway lists its results while push is off or down",
    "results.push": "results pushed to the gateway's own queue; listing only as the fallback",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchsight plan",
        description="Recommend the model backend and batch settings that meet a latency budget at the least "
                    "cost, simulated on the real batching code and state machine with every charge counted.",
        epilog="Without --rate or --trace the plan uses the default day of the cost model "
               "(three shifts with breaks and a bursty camera).")
    parser.add_argument("--rate", type=positive, metavar="IMAGES_PER_HOUR",
                        help="steady arrival rate while the line runs (default: none, the default day)")
    parser.add_argument("--shifts", type=_shifts, metavar="HH:MM-HH:MM[,...]",
                        help="hours the line runs with --rate, in the order of the day, e.g. "
                             "06:00-14:00,14:00-22:00,22:00-06:00 (default: all day)")
    parser.add_argument("--p50-seconds", type=positive, metavar="SECONDS",
                        help="half the images within this, drop to result on the gateway (default: none, "
                             "only --budget-minutes)")
    add_model_arguments(parser, backend_default=None,
                        backend_help="plan only this backend (default: every backend of cloud/template.yaml "
                                     f"but {', '.join(NOT_BY_DEFAULT)}, the cheapest recommended)")
    return parser


def _shifts(text: str) -> str:
    """--shifts, checked now so a wrong one is a usage error before anything runs."""
    try:
        parse_shifts(text)
    except TraceError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate is not None and args.trace is not None:
        parser.error("give --rate or --trace, not both")
    if args.shifts and args.rate is None:
        parser.error("--shifts goes with --rate: give --rate IMAGES_PER_HOUR too (a --trace has its own times)")
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
        print(f"batchsight plan: error: {exc}", file=sys.stderr)
        return 2
    if not arrivals:
        print("batchsight plan: error: the trace has no images in a day; raise --rate or widen --shifts",
              file=sys.stderr)
        return 2
    target = Target(args.budget_minutes * 60.0, args.p50_seconds)
    days = horizon(arrivals) / 86_400.0
    names = candidates(args.backend)
    print(f"Trace: {source}: {len(arrivals)} images over {days:g} day(s)")
    print(f"Budget: {target.describe()}, from the drop to the result on the gateway")
    print(f"Images: {images_summary(args)}")
    if any(PRESETS[name].hosted for name in names):
        print(f"Hosted: {backend_summary(args)} x {args.units}; detect {args.detect_latency:g} s, "
              f"up to {args.detect_tps:g}/s")
    print(f"Planning {', '.join(names)} (a minute or so for a median target of seconds) ...", flush=True)
    book = book_from(args)
    result = recommend(arrivals, target, backends=names, images=images_from(args),
                       services={hosted_name(args): service_from(args)}, billing=billing_from(args), book=book,
                       drain_cold_seconds=args.cold_start_seconds)
    try:
        best = result.best
    except BudgetTooSmall:
        print("\nNo backend meets this budget:")
        print("\n".join(f"  {reason}" for reason in result.refused.values()))
        hours = 24.0 * args.units
        price = book.usd(PRESETS[hosted_name(args)].hosting_price)
        print(f"Always on ({hosted_name(args)}): {hours:.1f} model-hours, {hours * price:.2f} USD per day of hosting.")
        return 1
    floor = floor_usage(len(arrivals), images_from(args)).bill(book).total / days
    print()
    print("\n".join(candidates_table(result, floor)))
    for reason in result.refused.values():
        print(f"not an option: {reason}")
    print(f"\nRecommended: {best.backend} ({best.policy})")
    print("\n".join(settings_lines(best)))
    print("\n".join(bill_lines(best, floor)))
    for note in best.notes:
        print(f"note: {note}")
    return 0


def candidates_table(result: Recommendation, floor: float) -> list[str]:
    lines = [[row.backend, row.policy, usd(row.cost_per_day), usd(row.per_thousand), f"{row.cost_per_day / floor:.2f}",
              duration(row.latency(50)), duration(row.max_latency), "recommended" if row is result.best else ""]
             for row in sorted(result.rows.values(), key=lambda r: r.cost_per_day)]
    return markdown(["backend", "plan", "USD/day", "USD/1k images", "x floor", "p50", "max", ""], lines,
                    right=range(2, 7))


def settings_lines(row: Row) -> list[str]:
    assert row.deployment is not None
    lines = ["\nEdge (component configuration):"]
    section = ""
    for key, value in row.deployment.gateway_settings().items():
        group, name = key.split(".")
        if group != section:
            lines.append(f"  {group}:")
            section = group
        lines.append(f"    {name + ': ' + value:<26} # {GATEWAY_COMMENTS[key]}")
    lines.append("\nCloud:")
    lines.append(f"  sam deploy --parameter-overrides {row.deployment.parameter_overrides()}")
    return lines


def bill_lines(row: Row, floor: float) -> list[str]:
    month = row.book.hours_per_month / 24.0
    lines = [f"\nExpected bill: {usd(row.cost_per_day)} USD per day, {usd(row.cost_per_day * month)} USD per month "
             f"({row.book.hours_per_month:g} h), {usd(row.per_thousand)} USD per 1,000 images; "
             f"{row.cost_per_day / floor:.2f}x the floor of {usd(floor)} USD per day "
             f"(prices of {row.book.taken}, {row.book.region})"]
    services = [[service, usd(cost * month), f"{100 * cost / row.cost_per_day:.0f}%"]
                for service, cost in row.bill.by_service().items()]
    lines += markdown(["service", "USD/month", "share"], services, right=(1, 2))
    lines += lean_lines(row, floor, month)
    lines.append(f"Latency, drop to result on the gateway: p50 {duration(row.latency(50))}, p95 "
                 f"{duration(row.latency(95))}, max {duration(row.max_latency)} (in the cloud, StartExecution to "
                 f"result: p50 {duration(row.latency(50, cloud=True))})")
    return lines


def lean_lines(row: Row, floor: float, month: float) -> list[str]:
    """The overrides that cut the bill further, which the plan leaves to you (lean.py), and what each saves."""
    lines, saved = ["Cut further with these overrides too:"], 0.0
    for override, (items, what) in OPTIONS.items():
        cut = charged(row, items)
        saved += cut
        lines.append(f"  {override}: -{usd(cut * month)} USD per month ({what})")
    lean = row.cost_per_day - saved
    lines.append(f"  all of them: {usd(lean)} USD per day, {lean / floor:.2f}x the floor")
    return lines


if __name__ == "__main__":
    sys.exit(main())
