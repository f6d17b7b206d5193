"""The report as one HTML page: summary cards, counts per line and per batch, the anomalous images.

Every value taken from a document is escaped: file names come from cameras and operators, so
they are text, never markup. The page is built as a list of lines, one section at a time.
"""
from __future__ import annotations

import base64
import hashlib
import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batchsight_tools.report.assets import SCRIPT, STYLE
from batchsight_tools.report.results import Entry
from batchsight_tools.report.selection import Selection
from batchsight_tools.report.times import display_time, format_time

COUNT_HEADERS = ('<th class="num">images</th><th class="num">anomalous</th>'
                 '<th class="num">anomaly rate</th></tr></thead><tbody>')
FOOTNOTE = ("Counts come from the result documents in the final bucket (one per image; images sent to the "
            "dead-letter queue have none). Thumbnails are downscaled; the full images are beside each document.")


@dataclass
class Tally:
    images: int = 0
    anomalous: int = 0
    batches: set[str] = field(default_factory=set)

    def add(self, entry: Entry) -> None:
        self.images += 1
        self.anomalous += int(entry.anomalous)
        self.batches.add(str(entry.document.get("batch_id", "")))

    @property
    def rate(self) -> float:
        return 100.0 * self.anomalous / self.images if self.images else 0.0


@dataclass
class Counts:
    """Everything the summary, the tables and the footer count, in one pass over the documents."""

    total: Tally = field(default_factory=Tally)
    per_line: dict[tuple[str, str, str], Tally] = field(default_factory=dict)
    per_batch: dict[str, Tally] = field(default_factory=dict)
    per_version: dict[tuple[str, str], Tally] = field(default_factory=dict)
    models: Counter[str] = field(default_factory=Counter)

    @classmethod
    def of(cls, entries: list[Entry]) -> Counts:
        counts = cls()
        for entry in entries:
            d = entry.document
            counts.total.add(entry)
            counts.per_line.setdefault((str(d.get("site")), str(d.get("line")), str(d.get("device"))),
                                       Tally()).add(entry)
            counts.per_batch.setdefault(str(d.get("batch_id", "")), Tally()).add(entry)
            model = d.get("model", {})
            counts.models[f"{model.get('backend', '?')} / {model.get('name', '?')}"] += 1
            counts.per_version.setdefault(model_version(d), Tally()).add(entry)
        return counts


def model_version(document: dict[str, Any]) -> tuple[str, str]:
    """(model name, version) that judged the image; the version is "" for a model without versions."""
    model = document.get("model", {})
    model = model if isinstance(model, dict) else {}
    return str(model.get("name") or "?"), str(model.get("version") or "")


def render(selection: Selection, entries: list[Entry], shown: list[Entry], *, generated: datetime) -> str:
    """The page for ``entries`` (all that match, counted) with ``shown`` (the anomalous ones drawn)."""
    counts = Counts.of(entries)
    lines = [*_head(selection, generated), *_summary(counts.total), *_tables(selection, counts),
             *_anomalies(counts.total, shown), *_footer(counts.models),
             f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(lines) + "\n"


def _head(selection: Selection, generated: datetime) -> list[str]:
    """Head and title; the policy allows data: images and exactly the inline style and script."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        f'style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}">',
        f"<title>batchsight report: {_e(selection.describe())}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<header><h1>batchsight inspection report</h1>",
        f'<p class="scope">{_e(selection.describe())}. Bucket {_e(selection.bucket)}. '
        f'Generated {_e(format_time(generated))}.</p></header>',
    ]


def _summary(total: Tally) -> list[str]:
    alert = " alert" if total.anomalous else ""
    cards = [("images", "images inspected", str(total.images), ""),
             ("anomalous", "anomalous images", str(total.anomalous), alert),
             ("rate", "anomaly rate", _percent(total.rate), alert),
             ("batches", "batches", str(len(total.batches)), "")]
    lines = ['<section id="summary"><div class="cards">']
    lines += [f'<div class="card{extra}" data-metric="{name}"><div class="value" id="count-{name}">{_e(value)}</div>'
              f'<div class="label">{_e(label)}</div></div>' for name, label, value, extra in cards]
    lines.append("</div>")
    if not total.images:
        lines.append('<p class="note" id="empty">No result documents match this selection.</p>')
    lines.append("</section>")
    return lines


def _tables(selection: Selection, counts: Counts) -> list[str]:
    """Counts per line, and per batch unless the report is of one batch."""
    lines = []
    if counts.per_line:
        lines += _count_table("By line", "by-line", ("site", "line", "device"), sorted(counts.per_line.items()))
    if counts.per_version:
        lines += _count_table("By model version", "by-version", ("model", "version"),
                              [((name, version or "(none)"), tally) for (name, version), tally
                               in sorted(counts.per_version.items(), key=_version_order)])
    if selection.batch is None and counts.per_batch:
        lines += _count_table("By batch", "by-batch", ("batch",),
                              [((batch,), tally) for batch, tally in sorted(counts.per_batch.items())])
    return lines


def _version_order(item: tuple[tuple[str, str], Tally]) -> tuple[str, int, str]:
    """By model, then version as a number (2 before 10)."""
    (name, version), _ = item
    return name, int(version) if version.isdigit() else 0, version


def _count_table(title: str, table_id: str, columns: tuple[str, ...],
                 rows: list[tuple[tuple[str, ...], Tally]]) -> list[str]:
    header = "".join(f"<th>{column}</th>" for column in columns)
    lines = [f'<section><h2>{title}</h2><table id="{table_id}"><thead><tr>{header}' + COUNT_HEADERS]
    for labels, tally in rows:
        cells = "".join(f"<td>{_e(label)}</td>" for label in labels)
        lines.append(f'<tr>{cells}<td class="num">{tally.images}</td><td class="num">{tally.anomalous}</td>'
                     f'<td class="num">{_e(_percent(tally.rate))}</td></tr>')
    lines.append("</tbody></table></section>")
    return lines


def _anomalies(total: Tally, shown: list[Entry]) -> list[str]:
    lines = ['<section id="anomalies"><h2>Anomalous images</h2>']
    if total.anomalous:
        note = "highest confidence first"
        if len(shown) < total.anomalous:
            note = f"the {len(shown)} of {total.anomalous} with the highest confidence"
        lines.append(f'<p class="note">{_e(note)}; coloured areas are the model\'s anomaly mask, '
                     'where it gives one.</p>')
    else:
        lines.append('<p class="note">None.</p>')
    lines.append('<div class="grid">')
    for entry in shown:
        lines += _figure(entry)
    lines.append("</div></section>")
    return lines


def _figure(entry: Entry) -> list[str]:
    """One anomalous image: its thumbnail (or why there is none) and what the model said."""
    d = entry.document
    name, version = model_version(d)
    lines = [f'<figure class="anomaly" data-image-id="{_e(d.get("image_id", ""))}" '
             f'data-model-version="{_e(version)}">']
    if entry.thumbnail:
        alt = f"{d.get('file_name') or d.get('image_id')}, confidence {_confidence(entry)}"
        masked = ' data-mask="true"' if d.get("mask") else ""
        lines.append(f'<img class="thumb" src="{entry.thumbnail}" width="{entry.width}" height="{entry.height}" '
                     f'alt="{_e(alt)}"{masked}>')
    else:
        lines.append(f'<div class="missing">{_e(entry.missing)}</div>')
    names = _anomaly_names(d)
    lines.append("<figcaption>"
                 f'<div class="confidence">{_e(_confidence(entry))}</div>'
                 f'<div class="file">{_e(d.get("file_name") or "(no file name)")}</div>'
                 + (f'<div class="names">{_e(", ".join(names))}</div>' if names else "")
                 + f'<div class="meta">captured {_e(display_time(d.get("captured_at")))}<br>'
                 f'{_e(d.get("site"))} / {_e(d.get("line"))} / {_e(d.get("device"))}, '
                 f'batch {_e(d.get("batch_id", "?"))}<br>'
                 f'<span class="version">model {_e(name)}{" version " + _e(version) if version else ""}</span><br>'
                 f'{_e(entry.key)}</div></figcaption></figure>')
    return lines


def _footer(models: Counter[str]) -> list[str]:
    lines = ["<footer>"]
    if models:
        lines.append("Model: " + _e(", ".join(f"{name} ({count} images)" for name, count in sorted(models.items())))
                     + ". ")
    lines += [FOOTNOTE, "</footer>"]
    return lines


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _percent(value: float) -> str:
    return f"{value:.1f} %"


def _confidence(entry: Entry) -> str:
    return _percent(100 * entry.confidence) if entry.confidence is not None else "no confidence given"


def _anomaly_names(document: dict[str, Any]) -> list[str]:
    """The anomaly classes the model named, without the segmentation's "background"."""
    names = []
    for anomaly in document.get("result", {}).get("Anomalies", []) or []:
        name = anomaly.get("Name") if isinstance(anomaly, dict) else None
        if name and name != "background":
            names.append(str(name))
    return names
