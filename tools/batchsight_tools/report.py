"""``batchsight report``: one self-contained HTML file for a batch or a time range.

Reads the result documents from the final bucket
(``results/{site}/{line}/{device}/{yyyy}/{mm}/{dd}/{image_id}.json``, the image beside each one,
and the segmentation mask when the model gave one) and writes counts, the anomaly rate per
line, and a grid of the anomalous images (highest confidence first) with the mask overlaid.
The file needs nothing else: thumbnails are embedded as data URIs, the style and the small
script are inline, and its Content-Security-Policy forbids loading anything from elsewhere,
so it can be mailed to a quality engineer who has no console access.

    python -m batchsight_tools.report --bucket B [--site S --line L --device D]
        (--batch ID | --since ISO [--until ISO]) --output report.html [--endpoint-url URL] [--region R]

A time range selects images by ``captured_at`` (when the camera took them), from ``--since``
included to ``--until`` excluded; times without a zone are UTC.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import os
import re
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, UTC
from pathlib import Path
from typing import Any

RESULT_KEY = re.compile(r"^results/([^/]+)/([^/]+)/([^/]+)/(\d{4})/(\d{2})/(\d{2})/([0-9a-f]{64})\.json$")
SEGMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MASK_BLEND = 0.55
FETCH_WORKERS = 8


class ReportError(RuntimeError):
    """Something the user can fix (bucket, credentials, arguments); the message says what."""


@dataclass(frozen=True)
class Selection:
    bucket: str
    site: str | None = None
    line: str | None = None
    device: str | None = None
    batch: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def prefix(self) -> str:
        """The longest key prefix the site/line/device filters allow."""
        prefix = "results/"
        for part in (self.site, self.line, self.device):
            if part is None:
                break
            prefix += part + "/"
        return prefix

    def key_matches(self, match: re.Match[str]) -> bool:
        site, line, device, yyyy, mm, dd, _ = match.groups()
        for wanted, actual in ((self.site, site), (self.line, line), (self.device, device)):
            if wanted is not None and wanted != actual:
                return False
        if self.since is None:
            return True
        day = date(int(yyyy), int(mm), int(dd))  # the key's day is captured_at's UTC day
        return self.since.date() <= day <= ((self.until or _now()) - timedelta(microseconds=1)).date()

    def document_matches(self, document: dict[str, Any]) -> bool:
        if self.batch is not None and document.get("batch_id") != self.batch:
            return False
        if self.since is not None:
            captured = _parse_time(str(document.get("captured_at", "")))
            if captured is None or captured < self.since or captured >= (self.until or _now()):
                return False
        return True

    def describe(self) -> str:
        filters = [f"{name} {value}" for name, value in
                   (("site", self.site), ("line", self.line), ("device", self.device)) if value is not None]
        scope = ", ".join(filters) if filters else "all sites, lines and devices"
        if self.batch is not None:
            return f"Batch {self.batch}; {scope}"
        until = _format_time(self.until) if self.until else "now"
        return f"Images captured from {_format_time(self.since)} to {until}; {scope}"


@dataclass
class Entry:
    key: str
    document: dict[str, Any]
    thumbnail: str | None = None  # data URI
    width: int = 0
    height: int = 0
    missing: str = ""

    @property
    def anomalous(self) -> bool:
        return bool(self.document.get("result", {}).get("IsAnomalous"))

    @property
    def confidence(self) -> float | None:
        value = self.document.get("result", {}).get("Confidence")
        return float(value) if isinstance(value, (int, float)) else None


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


# --- reading the bucket ----------------------------------------------------------------------

def s3_client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5},
                    max_pool_connections=FETCH_WORKERS * 2)
    return boto3.client("s3", endpoint_url=endpoint_url or None,
                        region_name=region or os.environ.get("AWS_REGION")
                        or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1", config=config)


def find_results(s3: Any, selection: Selection) -> list[Entry]:
    """The result documents the selection asks for, read in parallel."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=selection.bucket, Prefix=selection.prefix()):
        for item in page.get("Contents", []):
            match = RESULT_KEY.match(item["Key"])
            if match and selection.key_matches(match):
                keys.append(item["Key"])

    def load(key: str) -> Entry | None:
        try:
            document = json.loads(s3.get_object(Bucket=selection.bucket, Key=key)["Body"].read())
        except (ValueError, UnicodeDecodeError):
            print(f"skipped {key}: not a JSON result document", file=sys.stderr)
            return None
        if not isinstance(document, dict) or not selection.document_matches(document):
            return None
        return Entry(key=key, document=document)

    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        return [entry for entry in pool.map(load, keys) if entry is not None]


def _get(s3: Any, bucket: str, key: str) -> bytes | None:
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "AccessDenied"):
            return None
        raise


def attach_thumbnails(s3: Any, bucket: str, entries: list[Entry], size: int) -> None:
    """Downscaled JPEG thumbnails (mask overlaid) as data URIs, fetched in parallel."""

    def one(entry: Entry) -> None:
        image_key = str(entry.document.get("image", {}).get("key", ""))
        data = _get(s3, bucket, image_key) if image_key else None
        if data is None:
            entry.missing = f"image {image_key or '(no key)'} not found in the bucket"
            return
        mask_key = entry.document.get("mask", {}).get("key") if isinstance(entry.document.get("mask"), dict) else None
        mask = _get(s3, bucket, str(mask_key)) if mask_key else None
        try:
            entry.thumbnail, entry.width, entry.height = thumbnail(data, mask, size)
        except Exception as exc:  # noqa: BLE001 - one bad image must not lose the report
            entry.missing = f"image {image_key} could not be decoded ({type(exc).__name__})"

    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        list(pool.map(one, entries))


# --- images ----------------------------------------------------------------------------------

def thumbnail(image: bytes, mask: bytes | None, size: int) -> tuple[str, int, int]:
    """A JPEG data URI at most ``size`` px a side, with the anomaly mask blended in colour."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(image)) as opened:
        picture = ImageOps.exif_transpose(opened).convert("RGB")
    full_size = picture.size
    picture.thumbnail((size, size), Image.Resampling.LANCZOS)
    if mask is not None:
        picture = overlay_mask(picture, mask, full_size)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80, optimize=True)
    return ("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
            picture.width, picture.height)


def overlay_mask(picture: Any, mask_png: bytes, full_size: tuple[int, int]) -> Any:
    """Blend the mask's anomaly pixels (not black, not transparent) into the picture.

    Lookout for Vision colours each anomaly class in its mask; a grey-scale mask is drawn red.
    """
    from PIL import Image, ImageChops

    with Image.open(io.BytesIO(mask_png)) as opened:
        mask = opened.convert("RGBA")
    if mask.size != full_size:
        mask = mask.resize(full_size, Image.Resampling.NEAREST)
    mask = mask.resize(picture.size, Image.Resampling.NEAREST)
    red, green, blue, alpha = mask.split()
    lit = ImageChops.lighter(ImageChops.lighter(red, green), blue).point(lambda v: 255 if v > 0 else 0)
    hit = ImageChops.multiply(lit, alpha.point(lambda v: 255 if v > 0 else 0))
    grey = (ImageChops.difference(red, green).getbbox() is None
            and ImageChops.difference(green, blue).getbbox() is None)
    colour = Image.new("RGB", picture.size, (230, 30, 30)) if grey else mask.convert("RGB")
    return Image.composite(Image.blend(picture, colour, MASK_BLEND), picture, hit)


# --- HTML ------------------------------------------------------------------------------------

STYLE = """
:root { color-scheme: light; --ink: #1d2327; --muted: #5f6b73; --line: #d7dde1; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--ink); background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; }
.scope { color: var(--muted); margin: 0 0 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card .value { font-size: 28px; font-weight: 650; }
.card .label { color: var(--muted); font-size: 13px; }
.card.alert .value { color: var(--bad); }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 14px 5px 0; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 14px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 8px; overflow: hidden; background: #fafbfb; }
figure img { display: block; width: 100%; height: auto; background: #eee; }
figure .missing { padding: 40px 12px; color: var(--muted); text-align: center; background: #eee; }
figcaption { padding: 8px 10px; font-size: 13px; }
figcaption .confidence { font-size: 16px; font-weight: 650; color: var(--bad); }
figcaption .meta { color: var(--muted); word-break: break-all; }
.note { color: var(--muted); font-size: 13px; }
footer { margin-top: 28px; color: var(--muted); font-size: 12px; }
@media print { body { padding: 0; } figure { break-inside: avoid; } }
"""

# Marks each thumbnail once it has decoded (data-loaded, data-natural-width), so a reader or a
# test can tell that the images really render; it loads nothing.
SCRIPT = """
(function () {
  function mark(img) {
    img.setAttribute("data-loaded", img.naturalWidth > 0 ? "true" : "false");
    img.setAttribute("data-natural-width", String(img.naturalWidth));
  }
  var images = document.querySelectorAll("img.thumb");
  images.forEach(function (img) {
    if (img.complete) { mark(img); }
    else { img.addEventListener("load", function () { mark(img); });
           img.addEventListener("error", function () { mark(img); }); }
  });
})();
"""


COUNT_HEADERS = ('<th class="num">images</th><th class="num">anomalous</th>'
                 '<th class="num">anomaly rate</th></tr></thead><tbody>')


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _percent(value: float) -> str:
    return f"{value:.1f} %"


def _confidence(entry: Entry) -> str:
    return _percent(100 * entry.confidence) if entry.confidence is not None else "no confidence given"


def _anomaly_names(document: dict[str, Any]) -> list[str]:
    names = []
    for anomaly in document.get("result", {}).get("Anomalies", []) or []:
        name = anomaly.get("Name") if isinstance(anomaly, dict) else None
        if name and name != "background":
            names.append(str(name))
    return names


def render(selection: Selection, entries: list[Entry], shown: list[Entry], *, generated: datetime) -> str:
    total = Tally()
    per_line: dict[tuple[str, str, str], Tally] = {}
    per_batch: dict[str, Tally] = {}
    for entry in entries:
        total.add(entry)
        d = entry.document
        per_line.setdefault((str(d.get("site")), str(d.get("line")), str(d.get("device"))), Tally()).add(entry)
        per_batch.setdefault(str(d.get("batch_id", "")), Tally()).add(entry)
    models = Counter(f"{d.get('model', {}).get('backend', '?')} / {d.get('model', {}).get('name', '?')}"
                     for d in (e.document for e in entries))

    out: list[str] = []
    add = out.append
    add("<!DOCTYPE html>")
    add('<html lang="en"><head><meta charset="utf-8">')
    add('<meta name="viewport" content="width=device-width, initial-scale=1">')
    add('<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        f'style-src {_csp_hash(STYLE)}; script-src {_csp_hash(SCRIPT)}">')
    add(f"<title>batchsight report: {_e(selection.describe())}</title>")
    add(f"<style>{STYLE}</style></head><body>")
    add("<header><h1>batchsight inspection report</h1>")
    add(f'<p class="scope">{_e(selection.describe())}. Bucket {_e(selection.bucket)}. '
        f'Generated {_e(_format_time(generated))}.</p></header>')

    add('<section id="summary"><div class="cards">')
    cards = [("images", "images inspected", str(total.images), ""),
             ("anomalous", "anomalous images", str(total.anomalous), " alert" if total.anomalous else ""),
             ("rate", "anomaly rate", _percent(total.rate), " alert" if total.anomalous else ""),
             ("batches", "batches", str(len(total.batches)), "")]
    for name, label, value, extra in cards:
        add(f'<div class="card{extra}" data-metric="{name}"><div class="value" id="count-{name}">{_e(value)}</div>'
            f'<div class="label">{_e(label)}</div></div>')
    add("</div>")
    if not entries:
        add('<p class="note" id="empty">No result documents match this selection.</p>')
    add("</section>")

    if per_line:
        add('<section><h2>By line</h2><table id="by-line"><thead><tr><th>site</th><th>line</th><th>device</th>'
            + COUNT_HEADERS)
        for (site, line, device), tally in sorted(per_line.items()):
            add(f"<tr><td>{_e(site)}</td><td>{_e(line)}</td><td>{_e(device)}</td>"
                f'<td class="num">{tally.images}</td><td class="num">{tally.anomalous}</td>'
                f'<td class="num">{_e(_percent(tally.rate))}</td></tr>')
        add("</tbody></table></section>")
    if selection.batch is None and per_batch:
        add('<section><h2>By batch</h2><table id="by-batch"><thead><tr><th>batch</th>' + COUNT_HEADERS)
        for batch, tally in sorted(per_batch.items()):
            add(f'<tr><td>{_e(batch)}</td><td class="num">{tally.images}</td><td class="num">{tally.anomalous}</td>'
                f'<td class="num">{_e(_percent(tally.rate))}</td></tr>')
        add("</tbody></table></section>")

    add('<section id="anomalies"><h2>Anomalous images</h2>')
    if total.anomalous:
        note = "highest confidence first"
        if len(shown) < total.anomalous:
            note = f"the {len(shown)} of {total.anomalous} with the highest confidence"
        add(f'<p class="note">{_e(note)}; coloured areas are the model\'s anomaly mask, where it gives one.</p>')
    else:
        add('<p class="note">None.</p>')
    add('<div class="grid">')
    for entry in shown:
        d = entry.document
        add(f'<figure class="anomaly" data-image-id="{_e(d.get("image_id", ""))}">')
        if entry.thumbnail:
            alt = f"{d.get('file_name') or d.get('image_id')}, confidence {_confidence(entry)}"
            masked = ' data-mask="true"' if d.get("mask") else ""
            add(f'<img class="thumb" src="{entry.thumbnail}" width="{entry.width}" height="{entry.height}" '
                f'alt="{_e(alt)}"{masked}>')
        else:
            add(f'<div class="missing">{_e(entry.missing)}</div>')
        names = _anomaly_names(d)
        add("<figcaption>"
            f'<div class="confidence">{_e(_confidence(entry))}</div>'
            f'<div class="file">{_e(d.get("file_name") or "(no file name)")}</div>'
            + (f'<div class="names">{_e(", ".join(names))}</div>' if names else "")
            + f'<div class="meta">captured {_e(_display_time(d.get("captured_at")))}<br>'
            f'{_e(d.get("site"))} / {_e(d.get("line"))} / {_e(d.get("device"))}, batch {_e(d.get("batch_id", "?"))}<br>'
            f'{_e(entry.key)}</div></figcaption></figure>')
    add("</div></section>")

    add("<footer>")
    if models:
        add("Model: " + _e(", ".join(f"{name} ({count} images)" for name, count in sorted(models.items()))) + ". ")
    add("Counts come from the result documents in the final bucket (one per image; images sent to the "
        "dead-letter queue have none). Thumbnails are downscaled; the full images are beside each document.")
    add("</footer>")
    add(f"<script>{SCRIPT}</script>")
    add("</body></html>")
    return "\n".join(out) + "\n"


# --- command line ----------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _display_time(value: Any) -> str:
    parsed = _parse_time(value) if isinstance(value, str) else None
    return _format_time(parsed) if parsed else str(value or "?")


def _format_time(moment: datetime | None) -> str:
    if moment is None:
        return "?"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(text: str) -> datetime:
    parsed = _parse_time(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time (e.g. 2026-11-23T08:00Z)")
    return parsed


def _segment(text: str) -> str:
    if not SEGMENT.match(text):
        raise argparse.ArgumentTypeError(f"{text!r}: ids are letters, digits, '.', '_' and '-'")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchsight report",
        description="Write a self-contained HTML report (counts, anomaly rate, anomalous images with "
                    "their confidence and mask) from the result documents in the final bucket.")
    parser.add_argument("--bucket", required=True, help="the final bucket (stack output FinalBucketName)")
    parser.add_argument("--site", type=_segment)
    parser.add_argument("--line", type=_segment)
    parser.add_argument("--device", type=_segment)
    parser.add_argument("--batch", help="one batch (its id is the execution name)")
    parser.add_argument("--since", type=_iso, help="images captured at or after this time (ISO 8601, UTC if no zone)")
    parser.add_argument("--until", type=_iso, help="images captured before this time (default: now)")
    parser.add_argument("--output", required=True, type=Path, help="the HTML file to write")
    parser.add_argument("--endpoint-url", help="S3 endpoint (only for a local emulation)")
    parser.add_argument("--region", help="AWS region (default: the AWS configuration)")
    parser.add_argument("--max-images", type=int, default=500,
                        help="anomalous images shown, highest confidence first (default 500; counts include all)")
    parser.add_argument("--thumbnail-size", type=int, default=320, help="thumbnail side in px (default 320)")
    return parser


def selection_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Selection:
    if args.batch is not None and (args.since or args.until):
        parser.error("give --batch or a time range (--since/--until), not both")
    if args.batch is None and args.since is None:
        parser.error("give --batch ID, or --since ISO [--until ISO]")
    if args.until is not None and args.since is not None and args.until <= args.since:
        parser.error("--until must be after --since")
    if args.max_images < 0 or not 32 <= args.thumbnail_size <= 2048:
        parser.error("--max-images must be >= 0 and --thumbnail-size between 32 and 2048")
    return Selection(bucket=args.bucket, site=args.site, line=args.line, device=args.device,
                     batch=args.batch, since=args.since, until=args.until)


def write_report(selection: Selection, output: Path, *, s3: Any, max_images: int = 500,
                 thumbnail_size: int = 320) -> dict[str, Any]:
    entries = sorted(find_results(s3, selection), key=lambda e: (str(e.document.get("captured_at")), e.key))
    anomalous = sorted((e for e in entries if e.anomalous),
                       key=lambda e: (-(e.confidence if e.confidence is not None else -1), e.key))
    shown = anomalous[:max_images]
    attach_thumbnails(s3, selection.bucket, shown, thumbnail_size)
    page = render(selection, entries, shown, generated=_now())
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=output.parent, delete=False,
                                     prefix=f".{output.name}.", suffix=".tmp") as handle:
        handle.write(page)
    os.replace(handle.name, output)
    return {"images": len(entries), "anomalous": len(anomalous), "shown": len(shown),
            "without_image": sum(1 for e in shown if not e.thumbnail), "bytes": len(page.encode())}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    selection = selection_from(args, parser)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        summary = write_report(selection, args.output, s3=s3_client(args.endpoint_url, args.region),
                               max_images=args.max_images, thumbnail_size=args.thumbnail_size)
    except (BotoCoreError, ClientError) as exc:
        print(f"report failed reading s3://{selection.bucket}: {exc}", file=sys.stderr)
        return 1
    rate = 100.0 * summary["anomalous"] / summary["images"] if summary["images"] else 0.0
    print(f"wrote {args.output}: {summary['images']} images, {summary['anomalous']} anomalous ({rate:.1f} %), "
          f"{summary['shown']} shown, {summary['bytes'] / 1024:.0f} KiB")
    if summary["without_image"]:
        print(f"  {summary['without_image']} anomalous image(s) not found beside their result", file=sys.stderr)
    if not summary["images"]:
        print("  no result documents match this selection", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
