"""How the gateway gets its results (component/batchsight/results.py, push_receiver.py), and what it costs.

Pushed (``results.push``, the default): the drain sends each result document to the gateway's own
SQS queue right after writing it, in SendMessageBatch calls of up to 10 results that wait at most
``PUSH_BATCH_SECONDS`` for company; a drain process looks the queue's URL up once (GetQueueUrl,
when it starts cold). The gateway long-polls its queue all day (ReceiveMessage, 20 s: one empty
receive per 20 s of silence) and deletes what it took (DeleteMessageBatch). The document comes
inline: no GET. It lists S3 only as the fallback, for an image push has not brought after
``fallback_seconds`` (in this model: an image whose result is still being made, during a model
start say), its day at most once per ``fallback_seconds``.

Listed (``push`` off, as before push): every ``poll_seconds`` while any image is submitted and
without a result, the puller lists the whole prefix of the device's capture day in the final
bucket (ListObjectsV2, 1,000 keys a page, every object that prefix holds: the result document and
the moved image of each image judged that day, and the anomaly masks), then GETs each new result.
So a poll costs more as the day fills up. The listing's response bodies leave AWS: about 400
bytes of XML per key (key, date, ETag, checksum, size, class).

The gateway sees a pushed result ``PUSH_SECONDS`` after it was stored; a listed one at the first
poll after, once that poll's pages and GET have come back: that is the latency the tables report.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import batchsight_tools.costmodel.meters as meters
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.usage import Usage

DAY = 86_400.0
LIST_BYTES_PER_KEY = 400  # estimate of one <Contents> element of a ListObjectsV2 response
LIST_PAGE_SECONDS = 0.1  # one LIST page over the gateway's uplink (estimate)
GET_SECONDS = 0.05
PUSH_BATCH_SECONDS = 1.0  # the drain's flush (batchsight_pipeline/result_push.py FLUSH_SECONDS)
PUSH_ENTRIES = 10  # SendMessageBatch's limit
PUSH_SECONDS = PUSH_BATCH_SECONDS + 0.3  # the batch's wait, the long poll's answer and the loop's tick (estimate)
RECEIVE_WAIT_SECONDS = 20.0  # the gateway's long poll (push_receiver.py WAIT_SECONDS)
COLD_DRAIN_GAP_SECONDS = 600.0  # a drain after this long without one starts cold (estimate of Lambda's reuse)
MESSAGE_OVERHEAD_BYTES = 200  # the push message's envelope and the batch entry around the document


@dataclass(frozen=True)
class PullSettings:
    poll_seconds: float = 10.0  # the component's results.poll_seconds (listing, when push is off)
    push: bool = True  # results.push
    fallback_seconds: float = 120.0  # results.fallback_seconds


@dataclass(frozen=True)
class Pulled:
    seen_at: np.ndarray  # per image: when the gateway has its result (nan: never stored)
    lists: int  # LIST requests
    polls: int  # polls that listed anything


def pull(arrivals: np.ndarray, submitted: np.ndarray, stored: np.ndarray, images: Images,
         settings: PullSettings, usage: Usage | None = None) -> Pulled:
    """When the gateway sees each result, and the requests of its way there charged to ``usage``.

    ``submitted`` (the batch's StartExecution) and ``stored`` (the result document) are per
    image, seconds on the trace's clock; nan where an image never got that far.
    """
    ok = np.isfinite(stored) & np.isfinite(submitted)
    seen = np.full(len(arrivals), np.nan)
    if not ok.any():
        return Pulled(seen, 0, 0)
    listing = _Listing(arrivals[ok], stored[ok], images, np.flatnonzero(ok))
    if settings.push:
        seen[ok] = stored[ok] + PUSH_SECONDS
        period = settings.fallback_seconds
        first = np.ceil((submitted[ok] + period) / period).astype(np.int64)  # when push has been silent long enough
        last = np.floor(seen[ok] / period).astype(np.int64)  # the last tick before it came
        pages_at, key_count = listing.ticks(period, np.ceil(stored[ok] / period).astype(np.int64), first, last)
        if usage is not None:
            _charge_push(usage, stored[ok], images, days=max(1.0, math.ceil(float(np.max(arrivals)) / DAY)))
    else:
        period = settings.poll_seconds
        first = np.ceil(submitted[ok] / period).astype(np.int64)  # the first poll that awaits it
        last = np.maximum(np.ceil(stored[ok] / period).astype(np.int64), first)  # the poll that finds it
        pages_at, key_count = listing.ticks(period, last, first, last)
        seen[ok] = last * period + pages_at[last] * LIST_PAGE_SECONDS + GET_SECONDS
        if usage is not None:
            meters.s3_requests(usage, "GET", "of the result by the gateway", int(ok.sum()))
    lists = int(pages_at.sum())
    if usage is not None:
        meters.s3_requests(usage, "LIST", "by the gateway's result pull" + (" (fallback)" if settings.push else ""),
                           lists)
        meters.data_out(usage, "LIST responses to the gateway", key_count.sum() * LIST_BYTES_PER_KEY)
        meters.data_out(usage, "results to the gateway", int(ok.sum()) * images.result_bytes)
    return Pulled(seen, lists, int((pages_at > 0).sum()))


class _Listing:
    """The LIST pages of a day prefix per tick, for the images of ``arrivals`` (those with a result)."""

    def __init__(self, arrivals: np.ndarray, stored: np.ndarray, images: Images, indexes: np.ndarray) -> None:
        self.days = np.floor(arrivals / DAY).astype(np.int64)
        self.stored = stored
        self.objects = 2.0 + np.array([images.anomalous(int(i)) for i in indexes], dtype=float)

    def ticks(self, period: float, appear: np.ndarray, first: np.ndarray,
              last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(pages, keys) listed at each tick of ``period``: a day is listed at the ticks where one
        of its images is awaited (``first`` to ``last``, none where last < first), and holds the
        objects of every image whose result appeared (``appear``) by then."""
        ticks = int(max(appear.max(), last.max())) + 1
        pages_at, key_count = np.zeros(ticks), np.zeros(ticks)
        for day in np.unique(self.days):
            mine = (self.days == day)
            awaits = mine & (last >= first)
            awaiting = np.zeros(ticks + 1, dtype=np.int64)
            np.add.at(awaiting, first[awaits], 1)
            np.add.at(awaiting, last[awaits] + 1, -1)
            awaited = np.cumsum(awaiting)[:ticks] > 0
            appearing = np.zeros(ticks)
            np.add.at(appearing, appear[mine], self.objects[mine])
            keys = np.cumsum(appearing)
            pages_at += np.where(awaited, np.maximum(1, np.ceil(keys / meters.LIST_PAGE_KEYS)), 0)
            key_count += np.where(awaited, keys, 0)
        return pages_at, key_count


def _charge_push(usage: Usage, stored: np.ndarray, images: Images, *, days: float) -> None:
    """The drain's sends and queue lookups, the gateway's long polls (empty ones too) and deletes."""
    windows = np.unique(np.floor(stored / PUSH_BATCH_SECONDS), return_counts=True)[1]
    sends = int(np.ceil(windows / PUSH_ENTRIES).sum())
    per_send = len(stored) / sends * (images.result_bytes + MESSAGE_OVERHEAD_BYTES)
    times = np.sort(stored)
    cold = 1 + int((np.diff(times) > COLD_DRAIN_GAP_SECONDS).sum())
    meters.sqs_requests(usage, "SendMessageBatch of results by the drain", sends, payload_bytes=int(per_send))
    meters.sqs_requests(usage, "GetQueueUrl by a cold drain", cold)
    meters.sqs_requests(usage, "ReceiveMessage by the gateway (received)", sends, payload_bytes=int(per_send))
    meters.sqs_requests(usage, "ReceiveMessage by the gateway (empty long polls)", days * DAY / RECEIVE_WAIT_SECONDS)
    meters.sqs_requests(usage, "DeleteMessageBatch by the gateway", sends)


def charge_hosting_notice(usage: Usage, gateways: int) -> None:
    """One hosting announced (batchsight_pipeline/hosting_notice.py): ModelControl lists the result
    queues (1,000 a page) and sends each its notice; each gateway's long poll brings it, and it is
    deleted."""
    meters.sqs_requests(usage, "ListQueues of the result queues by ModelControl", math.ceil(gateways / 1000))
    meters.sqs_requests(usage, "SendMessage of a hosting notice by ModelControl", gateways)
    meters.sqs_requests(usage, "ReceiveMessage by the gateway (received)", gateways)
    meters.sqs_requests(usage, "DeleteMessageBatch by the gateway", gateways)
