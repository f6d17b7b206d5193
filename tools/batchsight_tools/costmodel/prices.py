"""The price book: the AWS list prices in prices.json, the one place the cost model reads them.

Every charge the model counts names a price key of this file; nothing else in the package holds
a figure in USD. A price is per one unit (per request, per GB-second, per instance-hour), so a
quantity times its price is its cost with no scaling left to get wrong.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices.json")


@dataclass(frozen=True)
class Price:
    key: str
    usd: float  # per one unit
    unit: str
    source: str
    sure: bool
    note: str = ""


@dataclass(frozen=True)
class PriceBook:
    region: str
    taken: str  # the date the figures were taken from the pages
    hours_per_month: float
    prices: dict[str, Price]

    def __getitem__(self, key: str) -> Price:
        try:
            return self.prices[key]
        except KeyError:
            raise KeyError(f"no price {key!r} in the price book ({PRICES_FILE.name})") from None

    def usd(self, key: str) -> float:
        return self[key].usd

    def per_day(self, key: str) -> float:
        """A monthly price (per key-month, metric-month, ...) as the share one day of it costs."""
        return self.usd(key) * 24.0 / self.hours_per_month

    def uncertain(self) -> list[Price]:
        return [p for p in self.prices.values() if not p.sure]


def parse(document: dict[str, Any]) -> PriceBook:
    prices = {key: Price(key, float(entry["usd"]), str(entry["unit"]), str(entry["source"]),
                         bool(entry["sure"]), str(entry.get("note", "")))
              for key, entry in document["prices"].items()}
    return PriceBook(str(document["region"]), str(document["taken"]), float(document["hours_per_month"]), prices)


@lru_cache(maxsize=1)
def price_book() -> PriceBook:
    """The project's price book (prices.json next to this module)."""
    return parse(json.loads(PRICES_FILE.read_text()))


def with_price(book: PriceBook, key: str, usd: float) -> PriceBook:
    """The book with one price replaced (a measured or negotiated figure given on the command line)."""
    old = book[key]
    prices = {**book.prices, key: Price(key, usd, old.unit, "given on the command line", True)}
    return PriceBook(book.region, book.taken, book.hours_per_month, prices)
