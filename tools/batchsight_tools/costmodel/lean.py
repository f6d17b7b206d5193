"""Deployment parameters that leave a charge out of the bill, and nothing else changes.

``Dashboard=false`` drops the stack's dashboard (a fixed monthly charge); ``ImageUpload=final-bucket``
has the gateways upload each image to its place next to its result, so the drain moves nothing (a
COPY, billed as a PUT, and a DELETE per image). Neither changes what else the stack does, so a row
deployed that way costs its bill less these charges: ``bench/cost.py`` and ``batchsight plan``
report both without simulating the day again.
"""
from __future__ import annotations

from batchsight_tools.costmodel.rows import Row

Items = tuple[tuple[str, str], ...]  # (service, item) of the bill's lines

OPTIONS: dict[str, tuple[Items, str]] = {
    "Dashboard=false": ((("CloudWatch", "dashboard"),),
                        "no CloudWatch dashboard; the alarms, metrics and logs stay"),
    "ImageUpload=final-bucket": ((("S3", "COPY of the image to the final bucket"),
                                  ("S3", "DELETE of the image from the source bucket")),
                                 "gateways upload each image next to its result: nothing is moved"),
}
DASHBOARD = OPTIONS["Dashboard=false"][0]
MOVE = OPTIONS["ImageUpload=final-bucket"][0]


def charged(row: Row, items: Items) -> float:
    """What the row pays a day for these (service, item) charges."""
    return sum(c.usd for c in row.bill.items() if (c.line.service, c.line.item) in items)
