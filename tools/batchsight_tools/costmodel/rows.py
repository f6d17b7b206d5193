"""A row of the tables: one deployment's whole bill for the trace and its images' latencies.

Everything a simulation charged (rows of our stack: every function call, transition and
request; the AWS sample's rows: its mechanism), plus the hosted hours at the backend's price,
the gateway's result pull, S3 storage, and for rows of our stack its fixed charges (fixed.py).
Latency is from the image's drop on the gateway to its result on the gateway (the result pull
included); the cloud latency from its batch's StartExecution to its result document.

Storage: an image lies in the source bucket from its upload until the drain moves it; the final
bucket keeps the image, its result and its mask. The template gives the final bucket no
lifecycle rule, so what a day of them costs depends on how long a plant keeps them: the rows
charge one day of keeping (KEPT_DAYS); every further day kept adds as much again.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

import batchsight_tools.costmodel.meters as meters
from batchsight_tools.costmodel.backends import PRESETS, BackendPreset
from batchsight_tools.costmodel.billing import Billing
from batchsight_tools.costmodel.deployment import Deployment
from batchsight_tools.costmodel.fixed import PER_LINE_METRICS, fixed_usage
from batchsight_tools.costmodel.floor import floor_usage
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.model import PolicyResult, percentile
from batchsight_tools.costmodel.prices import PriceBook, price_book
from batchsight_tools.costmodel.result_pull import PullSettings, pull
from batchsight_tools.costmodel.stack_shape import StackShape, template_shape
from batchsight_tools.costmodel.usage import Bill, Usage

DAY = 86_400.0
KEPT_DAYS = 1.0
UPLOAD_SECONDS = 1.0  # an image is in the source bucket about this long before its batch starts


def charge_storage(usage: Usage, *, images: Images, submitted: np.ndarray, stored: np.ndarray, book: PriceBook) -> None:
    """GB-months of the source bucket's waiting images and of one day of the final bucket's."""
    done = np.isfinite(stored) & np.isfinite(submitted)
    month = book.hours_per_month * 3600.0
    waiting = float(np.sum(stored[done] - submitted[done] + UPLOAD_SECONDS)) * images.image_bytes
    meters.s3_storage(usage, "of images in the source bucket until moved", waiting / meters.GB / month)
    anomalous = sum(1 for i in np.flatnonzero(done) if images.anomalous(int(i)))
    kept = int(done.sum()) * (images.image_bytes + images.result_bytes) + anomalous * images.mask_bytes
    gb_months = kept * KEPT_DAYS * DAY / meters.GB / month
    meters.s3_storage(usage, f"of images and results kept {KEPT_DAYS:g} day", gb_months)


@dataclass
class Row:
    backend: str
    policy: str
    usage: Usage  # over the whole trace
    days: float
    images: int
    latencies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cloud_latencies: np.ndarray = field(default_factory=lambda: np.zeros(0))
    book: PriceBook = field(default_factory=price_book)
    deployment: Deployment | None = None
    executions: int = 0
    notes: list[str] = field(default_factory=list)
    fixed: Usage = field(default_factory=Usage)  # the part of ``usage`` the stack pays whatever the images

    @cached_property
    def bill(self) -> Bill:
        """Per day."""
        return self.usage.scaled(1.0 / self.days).bill(self.book)

    @property
    def cost_per_day(self) -> float:
        return self.bill.total

    @property
    def variable_per_day(self) -> float:
        """What the images cost a day: all but the stack's fixed charges (fixed.py)."""
        return self.cost_per_day - self.fixed.scaled(1.0 / self.days).bill(self.book).total

    def line_share_per_day(self, lines: int) -> float:
        """One line's cost a day on a stack that ``lines`` lines like it share (issue #19: a site on
        one stack): its images, its own per-line metrics, and its share of the rest of the stack's
        fixed charges (dashboard, alarms, key, the pipeline's metrics, the reaper)."""
        fixed = self.fixed.scaled(1.0 / self.days).bill(self.book)
        own = sum(c.usd for c in fixed.charges if c.line.item == PER_LINE_METRICS)
        return self.variable_per_day + own + (fixed.total - own) / lines

    @property
    def per_thousand(self) -> float:
        return 1000.0 * self.cost_per_day / (self.images / self.days)

    def latency(self, q: float, *, cloud: bool = False) -> float | None:
        values = self.cloud_latencies if cloud else self.latencies
        return percentile(list(values), q) if len(values) else None

    @property
    def max_latency(self) -> float | None:
        return float(self.latencies.max()) if len(self.latencies) else None


def _times(values: dict[int, float], n: int) -> np.ndarray:
    out = np.full(n, np.nan)
    for index, t in values.items():
        out[index] = t
    return out


def simulated_row(result: PolicyResult, arrivals: Sequence[float], *, backend: BackendPreset | str, policy: str,
                  images: Images, results: PullSettings, stack: bool, billing: Billing | None = None,
                  book: PriceBook | None = None, shape: StackShape | None = None,
                  deployment: Deployment | None = None) -> Row:
    """A simulated policy's row: its charges, its hosting, the result pull, and (``stack``) the
    stack's fixed charges."""
    book = book or price_book()
    backend = PRESETS[backend] if isinstance(backend, str) else backend
    days = result.horizon / DAY
    a = np.asarray(arrivals, dtype=float)
    submitted, stored = _times(result.submitted, len(a)), _times(result.stored, len(a))
    usage = Usage().merge(result.usage)
    if backend.hosted and billing is not None:
        meters.instance_hours(usage, backend.service, "hosted model", backend.hosting_price,
                              result.billed_hours(billing))
    seen = pull(a, submitted, stored, images, results, usage).seen_at
    charge_storage(usage, images=images, submitted=submitted, stored=stored, book=book)
    fixed = fixed_usage(shape or template_shape(), days=days, metric_hours=result.metric_hours, book=book) \
        if stack else Usage()
    done = np.isfinite(seen)
    return Row(backend.name, policy, usage.merge(fixed), days, len(a), latencies=(seen - a)[done],
               cloud_latencies=(stored - submitted)[done], book=book, deployment=deployment,
               executions=sum(result.executions.values()), notes=list(result.notes), fixed=fixed)


def ideal_row(result: PolicyResult, arrivals: Sequence[float], *, backend: BackendPreset, images: Images,
              results: PullSettings, billing: Billing, book: PriceBook | None = None) -> Row:
    """The least hosted time that meets the budget, plus the floor's requests and nothing else."""
    a = np.asarray(arrivals, dtype=float)
    usage = floor_usage(len(a), images).merge()
    meters.instance_hours(usage, backend.service, "hosted model", backend.hosting_price, result.billed_hours(billing))
    stored = a + np.asarray(result.latencies, dtype=float)  # the ideal answers every image, in order
    seen = pull(a, a, stored, images, results).seen_at
    return Row(backend.name, "ideal start/stop", usage, result.horizon / DAY, len(a), latencies=seen - a,
               book=book or price_book(), notes=list(result.notes))


def floor_row(images: int, days: float, spec: Images, book: PriceBook | None = None) -> Row:
    return Row("-", "floor", floor_usage(images, spec), days, images, book=book or price_book())
