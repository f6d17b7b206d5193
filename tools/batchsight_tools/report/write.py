"""A whole report run: find the documents, draw the anomalous ones, write the page atomically.

The page replaces ``output`` only once it is complete (a temporary file in the same folder,
then a rename), so a report that fails half-way never leaves a truncated file behind.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchsight_tools.report.render import render
from batchsight_tools.report.results import Entry, attach_thumbnails, find_results
from batchsight_tools.report.selection import Selection
from batchsight_tools.report.times import now


@dataclass(frozen=True)
class Summary:
    """What the command line tells the user about the report it wrote."""

    images: int
    anomalous: int
    shown: int
    without_image: int
    bytes: int

    @property
    def rate(self) -> float:
        return 100.0 * self.anomalous / self.images if self.images else 0.0


def write_report(selection: Selection, output: Path, *, s3: Any, max_images: int = 500,
                 thumbnail_size: int = 320) -> Summary:
    """Write the report of ``selection`` to ``output``; at most ``max_images`` images are drawn."""
    entries = sorted(find_results(s3, selection), key=lambda e: (str(e.document.get("captured_at")), e.key))
    anomalous = sorted((e for e in entries if e.anomalous), key=_most_confident_first)
    shown = anomalous[:max_images]
    attach_thumbnails(s3, selection.bucket, shown, thumbnail_size)
    page = render(selection, entries, shown, generated=now())
    _write_atomically(output, page)
    return Summary(images=len(entries), anomalous=len(anomalous), shown=len(shown),
                   without_image=sum(1 for e in shown if not e.thumbnail), bytes=len(page.encode()))


def _most_confident_first(entry: Entry) -> tuple[float, str]:
    """Highest confidence first, those without one last; the key breaks ties, so runs agree."""
    return -(entry.confidence if entry.confidence is not None else -1), entry.key


def _write_atomically(output: Path, text: str) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=output.parent, delete=False,
                                     prefix=f".{output.name}.", suffix=".tmp") as handle:
        handle.write(text)
    os.replace(handle.name, output)
