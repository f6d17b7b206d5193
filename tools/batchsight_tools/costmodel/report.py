"""The markdown tables bench/cost.py and ``batchsight plan`` print: rows, a bill's breakdown, trade-offs."""
from __future__ import annotations

from collections.abc import Sequence

from batchsight_tools.costmodel.prices import PriceBook
from batchsight_tools.costmodel.rows import Row


def duration(seconds: float | None) -> str:
    """'8.4 s', '29.1 min', '2.3 h'; '-' for none."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def usd(value: float) -> str:
    return f"{value:,.2f}" if value >= 10 else f"{value:.3f}" if value >= 0.01 else f"{value:.5f}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = ()) -> list[str]:
    align = ["---:" if n in right else "---" for n in range(len(header))]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def rows_table(rows: Sequence[Row], floor: Row) -> list[str]:
    """One line per deployment: its cost per day and per 1,000 images, its ratio to the floor, latency."""
    header = ["backend", "policy", "USD/day", "USD/1k images", "x floor", "x floor w/o fixed", "p50", "p95", "max",
              "cloud p50", "executions/day"]
    lines = []
    for row in rows:
        executions = f"{row.executions / row.days:,.0f}" if row.executions else "-"
        ratio, variable = row.cost_per_day / floor.cost_per_day, row.variable_per_day / floor.cost_per_day
        lines.append([row.backend, row.policy, usd(row.cost_per_day), usd(row.per_thousand), f"{ratio:.2f}",
                      f"{variable:.2f}", duration(row.latency(50)), duration(row.latency(95)),
                      duration(row.max_latency), duration(row.latency(50, cloud=True)), executions])
    return markdown(header, lines, right=range(2, 11))


def breakdown_table(row: Row) -> list[str]:
    """The row's bill per day, service by service and item by item, largest first."""
    bill = row.bill
    total = bill.total or 1.0
    lines = []
    for service, cost in bill.by_service().items():
        lines.append([f"**{service}**", "", "", f"**{usd(cost)}**", f"**{100 * cost / total:.0f}%**"])
        for charge in bill.items([service]):
            if charge.usd >= 0.00005 or charge.quantity:
                lines.append(["", charge.line.item, f"{charge.quantity:,.4g} {charge.unit}", usd(charge.usd),
                              f"{100 * charge.usd / total:.1f}%"])
    lines.append(["**total**", "", "", f"**{usd(bill.total)}**", "100%"])
    return markdown(["service", "what", "quantity per day", "USD/day", "share"], lines, right=(2, 3, 4))


def tradeoff_table(rows: Sequence[Row], floor: Row) -> list[str]:
    """The batch age against the executions it makes and what they cost."""
    lines = []
    for row in rows:
        assert row.deployment is not None
        transitions = row.usage.quantity("Step Functions", "state transitions") / row.days
        lines.append([f"{row.deployment.policy.batching.max_age_seconds:g}",
                      f"{row.deployment.policy.results.poll_seconds:g}", f"{row.executions / row.days:,.0f}",
                      f"{transitions:,.0f}", usd(row.bill.service("Step Functions")), usd(row.cost_per_day),
                      f"{row.cost_per_day / floor.cost_per_day:.2f}", duration(row.latency(50)),
                      duration(row.latency(95))])
    header = ["batch.max_age_seconds", "results.poll_seconds", "executions/day", "transitions/day",
              "Step Functions USD/day", "USD/day", "x floor", "p50", "p95"]
    return markdown(header, lines, right=range(0, 9))


def prices_line(book: PriceBook) -> str:
    unsure = ", ".join(p.key for p in book.uncertain())
    return (f"prices: {book.region}, on demand, no free tier, taken {book.taken} (costmodel/prices.json); "
            f"not certain: {unsure or 'none'}")
