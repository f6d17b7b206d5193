"""Usage: what a deployment consumed, line by line, and the bill it makes at the price book's prices.

A usage line is one thing a service charges for, named for what caused it ("LIST by the
result pull", "drain duration"), with the price key it is charged at and its quantity in that
price's unit. Keeping the cause next to the quantity is what lets a table say not only that
S3 costs 40 cents a day but that the gateway's listing is why.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from batchsight_tools.costmodel.prices import PriceBook, price_book


class Line(NamedTuple):  # a tuple: hashed on every charge the simulation makes, so kept cheap
    service: str  # as the AWS bill groups it: "Lambda", "S3", "Step Functions", ...
    item: str  # what caused the charge
    price: str  # a key of the price book


class Usage:
    """Quantities per usage line; added to as the simulation runs, summed across parts."""

    def __init__(self) -> None:
        self._quantities: dict[Line, float] = defaultdict(float)

    def add(self, service: str, item: str, price: str, quantity: float) -> None:
        if quantity < 0:
            raise ValueError(f"{service} {item}: a negative quantity {quantity}")
        if quantity:
            self._quantities[Line(service, item, price)] += quantity

    def quantity(self, service: str, item: str) -> float:
        return sum(q for line, q in self._quantities.items() if line.service == service and line.item == item)

    def merge(self, *others: Usage) -> Usage:
        """A new Usage holding this one and the others."""
        total = Usage()
        for usage in (self, *others):
            for line, quantity in usage:
                total._quantities[line] += quantity
        return total

    def scaled(self, factor: float) -> Usage:
        """Every quantity times ``factor`` (a day's share of a longer run, say)."""
        result = Usage()
        for line, quantity in self:
            result._quantities[line] = quantity * factor
        return result

    def __iter__(self) -> Iterator[tuple[Line, float]]:
        return iter(sorted(self._quantities.items()))

    def bill(self, book: PriceBook | None = None) -> Bill:
        book = book or price_book()
        return Bill([Charge(line, quantity, book[line.price].unit, quantity * book.usd(line.price))
                     for line, quantity in self])


@dataclass(frozen=True)
class Charge:
    line: Line
    quantity: float
    unit: str
    usd: float


@dataclass(frozen=True)
class Bill:
    charges: list[Charge]

    @property
    def total(self) -> float:
        return sum(c.usd for c in self.charges)

    def by_service(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for charge in self.charges:
            totals[charge.line.service] += charge.usd
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def service(self, name: str) -> float:
        return sum(c.usd for c in self.charges if c.line.service == name)

    def items(self, services: Iterable[str] | None = None) -> list[Charge]:
        """The charges, largest first (only those of ``services`` when given)."""
        wanted = set(services) if services is not None else None
        return sorted((c for c in self.charges if wanted is None or c.line.service in wanted),
                      key=lambda c: -c.usd)
