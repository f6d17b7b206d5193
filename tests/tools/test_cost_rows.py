"""The floor, the gateway's result pull, the stack's fixed charges, and the tables built from them,
against cases counted by hand."""
from __future__ import annotations

import numpy as np
import pytest

from batchsight_tools.costmodel.fixed import fixed_usage
from batchsight_tools.costmodel.floor import floor_usage
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.report import breakdown_table, duration, rows_table
from batchsight_tools.costmodel.result_pull import PullSettings, pull
from batchsight_tools.costmodel.prices import price_book
from batchsight_tools.costmodel.rows import Row, charge_storage, floor_row
from batchsight_tools.costmodel.stack_shape import StackShape, alarm_metrics, template_shape
from batchsight_tools.costmodel.usage import Usage

NORMAL = Images(anomaly_rate=0.0)


def test_the_floor_is_two_puts_and_the_detectors_cpu_on_arm() -> None:
    """1,000 images at 50 ms: 2,000 PUT at 0.005 per 1,000 = 0.01 USD; 1,000 x 0.05 s x 1769/1024 GB
    = 86.38 GB-s at 0.0000133334 = 0.00115 USD."""
    bill = floor_usage(1000, Images(detector_ms=50.0)).bill()
    assert bill.service("S3") == pytest.approx(0.01)
    assert bill.service("Lambda") == pytest.approx(1000 * 0.05 * 1769 / 1024 * 0.0000133334)
    assert bill.total == pytest.approx(0.0111517, rel=1e-4)
    assert set(bill.by_service()) == {"S3", "Lambda"}  # nothing else: no queue, no requests, no idle


def test_the_result_pull_lists_while_results_are_awaited() -> None:
    """Push off: polls every 10 s. Image A submitted at 1 s, stored at 15 s; B submitted at 2 s, stored at 31 s.
    Both are awaited from the poll at 10 s; A is found at 20 s, B at 40 s: polls at 10, 20, 30, 40 s,
    each one LIST page (under 1,000 keys). Keys listed: 0, 2 (A's result and image), 2, 4 = 8 keys of
    about 400 bytes out; 2 GETs of results. A is seen after its poll's page and GET: 20.15 s."""
    usage = Usage()
    pulled = pull(np.array([0.5, 1.5]), np.array([1.0, 2.0]), np.array([15.0, 31.0]), NORMAL,
                  PullSettings(10.0, push=False), usage)
    assert pulled.lists == 4 and pulled.polls == 4
    assert list(pulled.seen_at) == pytest.approx([20.15, 40.15])
    assert usage.quantity("S3", "LIST by the gateway's result pull") == 4
    assert usage.quantity("S3", "GET of the result by the gateway") == 2
    assert usage.quantity("Data transfer", "LIST responses to the gateway") == pytest.approx(8 * 400 / 1024 ** 3)


def test_the_listing_grows_with_the_days_results() -> None:
    """2,500 images judged earlier that day (5,000 objects) and one awaited: its poll lists 6 pages
    (5,002 keys once its own result is there) and waits 6 x 0.1 s for them."""
    arrivals = np.arange(2501, dtype=float)
    submitted = arrivals.copy()
    stored = arrivals + 1.0
    submitted[-1], stored[-1] = 30_000.0, 30_005.0
    pulled = pull(arrivals, submitted, stored, NORMAL, PullSettings(10.0, push=False))
    assert pulled.seen_at[-1] == pytest.approx(30_010.0 + 6 * 0.1 + 0.05)


def test_a_result_never_stored_is_never_seen_nor_listed_for() -> None:
    pulled = pull(np.array([0.0, 5.0]), np.array([1.0, np.nan]), np.array([3.0, np.nan]), NORMAL,
                  PullSettings(push=False))
    assert np.isnan(pulled.seen_at[1]) and pulled.lists == 1


def test_pushed_results_cost_sends_long_polls_and_deletes_and_no_listing() -> None:
    """Push: A stored at 15 s, B at 31 s, in two flush windows: two SendMessageBatch calls, one
    GetQueueUrl (one drain process), two receives that bring them and two deletes, and a day of empty
    20-second long polls (4,320). Each is seen 1.3 s after its write; no LIST, no GET."""
    usage = Usage()
    pulled = pull(np.array([0.5, 1.5]), np.array([1.0, 2.0]), np.array([15.0, 31.0]), NORMAL, PullSettings(), usage)
    assert pulled.lists == 0 and list(pulled.seen_at) == pytest.approx([16.3, 32.3])
    assert usage.quantity("SQS", "SendMessageBatch of results by the drain") == 2
    assert usage.quantity("SQS", "GetQueueUrl by a cold drain") == 1
    assert usage.quantity("SQS", "ReceiveMessage by the gateway (received)") == 2
    assert usage.quantity("SQS", "ReceiveMessage by the gateway (empty long polls)") == 4320
    assert usage.quantity("SQS", "DeleteMessageBatch by the gateway") == 2
    assert usage.quantity("S3", "GET of the result by the gateway") == 0


def test_push_batches_ten_results_a_call_and_a_cold_drain_looks_its_queue_up_again() -> None:
    """25 results stored within one second: three sends (10, 10, 5); 25 more an hour later: a second
    lookup of the queue's URL by the drain that starts cold."""
    stored = np.concatenate([np.linspace(100.0, 100.9, 25), np.linspace(3700.0, 3700.9, 25)])
    usage = Usage()
    pull(stored - 50, stored - 40, stored, NORMAL, PullSettings(), usage)
    assert usage.quantity("SQS", "SendMessageBatch of results by the drain") == 6
    assert usage.quantity("SQS", "GetQueueUrl by a cold drain") == 2


def test_with_push_a_result_awaited_past_the_fallback_is_listed_for_once_a_fallback() -> None:
    """Submitted at 0 s, its result made at 300 s (a model start): push has been silent at the
    fallback ticks of 120 and 240 s, which list the day; 301.3 s brings it."""
    pulled = pull(np.array([0.0]), np.array([0.0]), np.array([300.0]), NORMAL, PullSettings(fallback_seconds=120.0))
    assert pulled.lists == 2 and pulled.seen_at[0] == pytest.approx(301.3)


def test_storage_is_the_source_buckets_wait_and_a_day_in_the_final_bucket() -> None:
    """Two images of 200 KB: in the source bucket 10 + 1 s and 30 + 1 s (the upload before the batch
    starts) = 42 s x 200,000 bytes; in the final bucket with their 1.2 KB results for a day."""
    usage = Usage()
    charge_storage(usage, images=NORMAL, submitted=np.array([0.0, 0.0]), stored=np.array([10.0, 30.0]),
                   book=price_book())
    month_seconds = 730 * 3600.0
    assert usage.quantity("S3", "storage of images in the source bucket until moved") == pytest.approx(
        42 * 200_000 / 1024 ** 3 / month_seconds)
    assert usage.quantity("S3", "storage of images and results kept 1 day") == pytest.approx(
        2 * 201_200 * 86_400 / 1024 ** 3 / month_seconds)


def test_fixed_charges_per_day_by_hand() -> None:
    """A day of: 7 alarm metrics (0.10 each a month), a dashboard (3), a KMS key (1), custom metrics
    published in 3 metric-hours (0.30 a metric-month of 730 h), and the reaper every 15 minutes (96
    invocations of 80 ms at 1 GB and 96 consistent reads)."""
    shape = StackShape(memory_mb=1024, reaper_seconds=900, alarm_metrics=7, dashboards=1, kms_keys=1)
    bill = fixed_usage(shape, days=1.0, metric_hours={(0, "a"), (1, "a"), (1, "b")}).bill()
    month = 24 / 730
    assert bill.service("KMS") == pytest.approx(1.0 * month)
    cloudwatch = 7 * 0.10 * month + 3.0 * month + 3 * 0.30 / 730 + 96 * 350 / 1024 ** 3 * 0.5
    assert bill.service("CloudWatch") == pytest.approx(cloudwatch)
    per_line = fixed_usage(shape, days=1.0, metric_hours={(0, "a"), (0, "b[site=s][line=l]")}).bill()
    assert {c.line.item: c.usd for c in per_line.items(["CloudWatch"]) if "custom metrics" in c.line.item} == {
        "custom metrics per line (EMF, per hour published)": pytest.approx(0.30 / 730),
        "custom metrics of the pipeline (EMF, per hour published)": pytest.approx(0.30 / 730)}
    assert bill.service("Lambda") == pytest.approx(96 * 0.0000002 + 96 * 0.08 * 0.0000166667)
    assert bill.service("DynamoDB") == pytest.approx(96 * 0.000000125)


def test_the_stack_shape_is_read_from_the_template() -> None:
    """cloud/template.yaml: alarms on 2 (dead letters: visible and not), 2 (failed, timed out), 1
    (execution time; with a backend billed while hosted 3: hosted minutes and age too), 1
    (overloaded) and 1 (the queue's oldest message) metrics; one dashboard (none with Dashboard=false);
    one KMS key; the reaper every 15 minutes; functions of 1,024 MB on x86_64; a drain of DrainMemorySize."""
    shape = template_shape()  # the default backend, lambda
    assert (shape.alarm_metrics, shape.dashboards, shape.kms_keys) == (7, 1, 1)
    assert template_shape(dashboard=False).dashboards == 0, "Dashboard=false: the resource's Condition is read"
    assert shape.images_moved and not template_shape(image_upload="final-bucket").images_moved, \
        "ImageUpload=final-bucket: the drain moves nothing (the template's condition is read)"
    assert template_shape("sagemaker").alarm_metrics == template_shape("lookoutvision").alarm_metrics == 9
    assert template_shape("sagemaker-serverless").alarm_metrics == 7
    assert (shape.reaper_seconds, shape.memory_mb, shape.arch, shape.drain_memory_mb) == (900, 1024, "x86_64", 1769)
    assert alarm_metrics({"Properties": {"MetricName": "x"}}) == 1


def test_tables_give_ratios_to_the_floor_and_readable_durations() -> None:
    floor = floor_row(1000, 1.0, Images())
    usage = Usage().merge(floor.usage, floor.usage)
    row = Row("lambda", "batchsight", usage, 1.0, 1000, latencies=np.array([5.0, 9.0, 400.0]),
              cloud_latencies=np.array([1.0, 2.0, 3.0]), executions=50)
    table = rows_table([row, floor], floor)
    assert table[0].startswith("| backend | policy | USD/day |") and len(table) == 4
    cells = [c.strip() for c in table[2].split("|")[1:-1]]
    assert cells[4:6] == ["2.00", "2.00"] and cells[6:10] == ["9.0 s", "6.7 min", "6.7 min", "2.0 s"]
    assert [duration(s) for s in (None, 8.44, 1746, 9000)] == ["-", "8.4 s", "29.1 min", "2.5 h"]
    breakdown = breakdown_table(row)
    assert breakdown[-1].startswith("| **total** |") and any("**S3**" in line for line in breakdown)
