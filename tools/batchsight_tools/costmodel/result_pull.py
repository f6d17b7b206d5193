"""The gateway's result pull as component/batchsight/results.py does it today, and what it costs.

Every ``results.poll_seconds`` while any image is submitted and without a result, the puller
lists the whole prefix of the device's capture day in the final bucket (ListObjectsV2, 1,000
keys a page, every object that prefix holds: the result document and the moved image of each
image judged that day, and the anomaly masks), then GETs each new result. So a poll costs more
as the day fills up, and polls are made only while results are awaited. The listing's response
bodies leave AWS: about 400 bytes of XML per key (key, date, ETag, checksum, size, class).

The gateway sees a result at the first poll after it was stored, once that poll's pages and
GET have come back: that is the latency the tables report.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import batchsight_tools.costmodel.meters as meters
from batchsight_tools.costmodel.images import Images
from batchsight_tools.costmodel.usage import Usage

DAY = 86_400.0
LIST_BYTES_PER_KEY = 400  # estimate of one <Contents> element of a ListObjectsV2 response
LIST_PAGE_SECONDS = 0.1  # one LIST page over the gateway's uplink (estimate)
GET_SECONDS = 0.05


@dataclass(frozen=True)
class PullSettings:
    poll_seconds: float = 10.0  # the component's results.poll_seconds


@dataclass(frozen=True)
class Pulled:
    seen_at: np.ndarray  # per image: when the gateway has its result (nan: never stored)
    lists: int  # LIST requests
    polls: int  # polls that listed anything


def pull(arrivals: np.ndarray, submitted: np.ndarray, stored: np.ndarray, images: Images,
         settings: PullSettings, usage: Usage | None = None) -> Pulled:
    """When the gateway sees each result, and the pull's requests charged to ``usage``.

    ``submitted`` (the batch's StartExecution) and ``stored`` (the result document) are per
    image, seconds on the trace's clock; nan where an image never got that far.
    """
    period = settings.poll_seconds
    ok = np.isfinite(stored) & np.isfinite(submitted)
    seen = np.full(len(arrivals), np.nan)
    if not ok.any():
        return Pulled(seen, 0, 0)
    first = np.ceil(submitted[ok] / period).astype(np.int64)  # the first poll that awaits it
    last = np.maximum(np.ceil(stored[ok] / period).astype(np.int64), first)  # the poll that finds it
    days = np.floor(arrivals[ok] / DAY).astype(np.int64)
    objects = 2.0 + np.array([images.anomalous(int(i)) for i in np.flatnonzero(ok)], dtype=float)
    ticks = int(last.max()) + 1
    pages_at = np.zeros(ticks)
    key_count = np.zeros(ticks)
    for day in np.unique(days):
        mine = days == day
        awaiting = np.zeros(ticks + 1, dtype=np.int64)
        np.add.at(awaiting, first[mine], 1)
        np.add.at(awaiting, last[mine] + 1, -1)
        awaited = np.cumsum(awaiting)[:ticks] > 0
        appearing = np.zeros(ticks)
        np.add.at(appearing, last[mine], objects[mine])  # listed from the poll that finds it on
        keys = np.cumsum(appearing)
        pages = np.maximum(1, np.ceil(keys / meters.LIST_PAGE_KEYS))
        pages_at += np.where(awaited, pages, 0)
        key_count += np.where(awaited, keys, 0)
    seen[ok] = last * period + pages_at[last] * LIST_PAGE_SECONDS + GET_SECONDS
    lists = int(pages_at.sum())
    if usage is not None:
        meters.s3_requests(usage, "LIST", "by the gateway's result pull", lists)
        meters.s3_requests(usage, "GET", "of the result by the gateway", int(ok.sum()))
        meters.data_out(usage, "LIST responses to the gateway", key_count.sum() * LIST_BYTES_PER_KEY)
        meters.data_out(usage, "results to the gateway", int(ok.sum()) * images.result_bytes)
    return Pulled(seen, lists, int((pages_at > 0).sum()))

