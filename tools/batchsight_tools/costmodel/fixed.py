"""What the stack costs a day whatever the images: its monthly charges and its scheduled work.

- CloudWatch: the template's alarms (billed per metric each reads), its dashboard, and the custom
  metrics our functions publish as EMF, billed for each hour a metric is published in: the ones
  per line apart (``PER_LINE_METRICS``), since a site's lines share all the rest of a stack;
- KMS: the notification topic's key;
- the reaper, every ReaperScheduleExpression: one invocation and one consistent read of the lock
  (a hosted backend's describe call is free).
The hourly safety-net execution is not here: the simulation walks it like any other execution.
A scheduled EventBridge rule costs nothing; the lock table's storage (one item) rounds to zero.
"""
from __future__ import annotations

from collections.abc import Iterable

import batchsight_tools.costmodel.meters as meters
from batchsight_tools.costmodel.prices import PriceBook, price_book
from batchsight_tools.costmodel.stack_charges import LOG_BYTES, SMALL_FUNCTION_SECONDS
from batchsight_tools.costmodel.stack_shape import StackShape
from batchsight_tools.costmodel.usage import Usage

DAY = 86_400.0
PER_LINE_METRICS = "custom metrics per line (EMF, per hour published)"


def fixed_usage(shape: StackShape, *, days: float, metric_hours: Iterable[tuple[int, str]] = (),
                book: PriceBook | None = None) -> Usage:
    """The stack's charges over ``days`` days that do not depend on the images."""
    book = book or price_book()
    usage = Usage()
    months = days * 24.0 / book.hours_per_month
    meters.monthly(usage, "CloudWatch", "alarm metrics", "cloudwatch.alarm_metric_month", shape.alarm_metrics * months)
    meters.monthly(usage, "CloudWatch", "dashboard", "cloudwatch.dashboard_month", shape.dashboards * months)
    meters.monthly(usage, "KMS", "notification key", "kms.key_month", shape.kms_keys * months)
    hours = set(metric_hours)
    per_line = {hour for hour in hours if "[line=" in hour[1]}
    meters.monthly(usage, "CloudWatch", PER_LINE_METRICS, "cloudwatch.custom_metric_month",
                   len(per_line) / book.hours_per_month)
    meters.monthly(usage, "CloudWatch", "custom metrics of the pipeline (EMF, per hour published)",
                   "cloudwatch.custom_metric_month", len(hours - per_line) / book.hours_per_month)
    runs = days * DAY / shape.reaper_seconds
    meters.lambda_invocations(usage, "reaper", memory_mb=shape.memory_mb, seconds=SMALL_FUNCTION_SECONDS["reaper"],
                              arch=shape.arch, count=round(runs))
    meters.dynamodb_reads(usage, "lock reads by the reaper", runs)
    meters.log_ingestion(usage, "of the functions", LOG_BYTES["reaper"] * runs)
    return usage
