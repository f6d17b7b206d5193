"""``batchsight report`` on result documents the real pipeline wrote, checked rendered in Chromium.

The pipeline (real ASL under moto, handlers in-process, local detector) processes one batch on
line l1 and a second batch on line l2 captured two days later; the local detector stores an
anomaly mask with each anomalous result, and one of them is then replaced by a segmentation
mask, as a Lookout for Vision model would store it. The report is written by the
CLI as a subprocess against the moto endpoint, then opened in headless Chromium: the DOM after
the page's script ran must show the counts and every anomalous thumbnail decoded, and the
screenshot must not be blank. Without /usr/bin/chromium (``apt-get install -y chromium``) the
rendering tests skip; the HTML checks still run.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchsight_tools.localcloud.stack import CREDENTIALS
from batchsight_tools.report.selection import RESULT_KEY
from batchsight_tools.synth import generate
from tests.integration.test_pipeline import _queue_image
from tests.support import CloudFixture

pytestmark = pytest.mark.integration

CHROMIUM = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and os.path.exists(p)), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium): the report is "
                             "checked as rendered by a browser, not as text")
HOSTILE = '<b class="injected">part</b> & "quoted"'


@dataclass
class Batches:
    cloud: CloudFixture
    b1: list[dict[str, Any]]  # result documents of batch b-1 (line l1, 2026-11-23)
    b2: list[dict[str, Any]]  # result documents of batch b-2 (line l2, 2026-11-25)
    masked_image_id: str


def _queue_on_line_2(cloud: CloudFixture, data: bytes, n: int) -> None:
    """Like _queue_image, but batch b-2 on line l2, captured two days later."""
    image_id = hashlib.sha256(data).hexdigest()
    key = f"incoming/s1/l2/d1/2026/11/25/{image_id}.jpg"
    cloud.client("s3").put_object(Bucket=cloud.outputs.source_bucket, Key=key, Body=data)
    message = {"v": 1, "bucket": cloud.outputs.source_bucket, "key": key, "image_id": image_id,
               "site": "s1", "line": "l2", "device": "d1", "captured_at": f"2026-11-25T0{n}:30:00.000Z",
               "batch_id": "b-2", "file_name": f"l2_{n}.jpg"}
    cloud.client("sqs").send_message(QueueUrl=cloud.outputs.queue_url, MessageBody=json.dumps(message))


def _documents(cloud: CloudFixture) -> list[dict[str, Any]]:
    s3 = cloud.client("s3")
    listed = s3.list_objects_v2(Bucket=cloud.outputs.final_bucket, Prefix="results/").get("Contents", [])
    return [json.loads(s3.get_object(Bucket=cloud.outputs.final_bucket, Key=o["Key"])["Body"].read())
            for o in listed if RESULT_KEY.match(o["Key"])]


def _mask_png(size: tuple[int, int]) -> bytes:
    """A Lookout for Vision style mask: black background, the anomaly (left half) in a class colour."""
    mask = Image.new("RGB", size, (0, 0, 0))
    mask.paste((35, 120, 255), (0, 0, size[0] // 2, size[1]))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def batches(local_cloud_session: CloudFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batches]:
    cloud = local_cloud_session
    cloud.reset()
    folder = tmp_path_factory.mktemp("frames")
    for frame in generate(folder / "b1", count=12, size=128, seed=5):
        name = f"{HOSTILE} {frame.path.name}"  # file names come from the camera: never markup
        _queue_image(cloud, frame.path.read_bytes(), ext=frame.path.suffix[1:], name=name)
    for n, frame in enumerate(generate(folder / "b2", count=4, anomaly_rate=0.5, size=128, seed=8)):
        if frame.path.suffix == ".jpg":
            _queue_on_line_2(cloud, frame.path.read_bytes(), n)
    # A name of its own each time: pytest-xdist may set this module up more than once on a worker
    # (--dist worksteal), and the local cloud keeps every execution name it has seen.
    execution = cloud.run_execution(f"report-batches-{uuid.uuid4().hex[:8]}")
    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    assert cloud.hosting_state() == "STOPPED"

    documents = _documents(cloud)
    b1 = [d for d in documents if d["batch_id"] == "b-1"]
    b2 = [d for d in documents if d["batch_id"] == "b-2"]
    assert len(b1) == 12 and b2, "the pipeline wrote one result per image"
    assert any(d["result"]["IsAnomalous"] for d in b1), "the generated batch has defects"
    # One anomalous result gets a mask, stored the way the drain stores a segmentation model's.
    target = next(d for d in b1 if d["result"]["IsAnomalous"])
    s3, bucket = cloud.client("s3"), cloud.outputs.final_bucket
    with Image.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=target["image"]["key"])["Body"].read())) as image:
        size = image.size
    mask_key = target["image"]["key"].rsplit(".", 1)[0] + ".mask.png"
    s3.put_object(Bucket=bucket, Key=mask_key, Body=_mask_png(size), ContentType="image/png")
    target["mask"] = {"key": mask_key}
    target["result"]["Anomalies"] = [{"Name": "background"}, {"Name": "scratch"}]
    s3.put_object(Bucket=bucket, Key=mask_key.replace(".mask.png", ".json"),
                  Body=json.dumps(target).encode(), ContentType="application/json")
    yield Batches(cloud, b1, b2, target["image_id"])


def report(cloud: CloudFixture, output: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: ``batchsight report`` (the edge CLI starts the cloud module)."""
    env = {**os.environ, **CREDENTIALS}
    env.pop("AWS_ENDPOINT_URL", None)  # the report is pointed at moto by --endpoint-url alone
    return subprocess.run(
        [sys.executable, "-m", "batchsight_tools.cli", "report", "--bucket", cloud.outputs.final_bucket,
         "--output", str(output), "--endpoint-url", cloud.outputs.endpoint_url, "--region", "us-east-1", *args],
        capture_output=True, text=True, timeout=120, env=env)


class Page(HTMLParser):
    """What a check needs from a page: the thumbnails, the cards, all text, every tag and URL."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.cards: dict[str, str] = {}
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.text_parts: list[str] = []
        self._card: str | None = None
        self.feed(text)
        self.text = " ".join(" ".join(self.text_parts).split())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        for name in ("src", "href", "action", "srcset", "poster"):
            if name in attributes:
                self.urls.append(attributes[name])
        if tag == "img":
            self.images.append(attributes)
        if attributes.get("id", "").startswith("count-"):
            self._card = attributes["id"][len("count-"):]

    def handle_data(self, data: str) -> None:
        self.text_parts.append(data)
        if self._card is not None:
            self.cards[self._card] = data.strip()
            self._card = None


def rendered_dom(html_file: Path, profile: Path) -> str:
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=5000", "--dump-dom", html_file.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "<html" in result.stdout, result.stderr[-2000:]
    return result.stdout


def screenshot(html_file: Path, png: Path, profile: Path) -> Image.Image:
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1280,2000",
         f"--screenshot={png}", html_file.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and png.exists(), result.stderr[-2000:]
    return Image.open(png).convert("RGB")


def _percent(anomalous: int, images: int) -> str:
    return f"{100.0 * anomalous / images:.1f} %"


# --- the report of one batch, rendered -------------------------------------------------------

@needs_chromium
def test_batch_report_renders_counts_and_every_anomalous_image(batches: Batches, tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    result = report(batches.cloud, output, "--batch", "b-1")
    assert result.returncode == 0, result.stderr
    anomalous = [d for d in batches.b1 if d["result"]["IsAnomalous"]]
    assert f"12 images, {len(anomalous)} anomalous" in result.stdout

    text = output.read_text()
    source = Page(text)
    # self-contained: nothing but data URIs, no external style sheets, fonts or scripts
    assert source.urls and all(url.startswith("data:image/jpeg;base64,") for url in source.urls)
    assert "link" not in source.tags and "url(" not in text and "@import" not in text
    assert "default-src 'none'" in text
    assert output.stat().st_size < 40_000 + 60_000 * len(anomalous), "thumbnails, not full images"

    dom = Page(rendered_dom(output, tmp_path / "profile"))
    assert dom.cards == {"images": "12", "anomalous": str(len(anomalous)),
                         "rate": _percent(len(anomalous), 12), "batches": "1"}
    thumbs = [img for img in dom.images if "thumb" in img.get("class", "")]
    assert len(thumbs) == len(dom.images) == len(anomalous), "one thumbnail per anomalous image, nothing else"
    assert all(img.get("data-loaded") == "true" for img in thumbs), [i.get("data-loaded") for i in thumbs]
    assert all(0 < int(img["data-natural-width"]) <= 320 for img in thumbs)
    assert all(img.get("data-mask") == "true" for img in thumbs), "the local detector stores a mask per defect"
    for document in anomalous:  # every confidence is shown, as a percentage
        assert f"{100 * document['result']['Confidence']:.1f} %" in dom.text
    assert "scratch" in dom.text  # the masked result's anomaly class
    # the hostile file names are text, never markup
    assert "injected" not in {img.get("class") for img in dom.images}
    assert all(tag != "b" for tag in dom.tags)
    assert HOSTILE in dom.text

    picture = screenshot(output, tmp_path / "shot.png", tmp_path / "profile2")
    assert picture.size == (1280, 2000)
    colours = picture.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50, "the screenshot is blank"
    assert any(low != high for low, high in picture.getextrema())


class VersionPage(HTMLParser):
    """The by-version table's rows, and each figure's data-model-version and "model ... version" caption."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.figures: list[tuple[str, str, str]] = []   # (image id, data-model-version, caption line)
        self._table = ""
        self._cell = False
        self._caption = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self._table = attributes.get("id", "") if tag == "table" else self._table
        if tag == "tr" and self._table == "by-version":
            self.rows.append([])
        self._cell = tag == "td" and self._table == "by-version"
        if tag == "figure":
            self.figures.append((attributes["data-image-id"], attributes["data-model-version"], ""))
        self._caption = tag == "span" and attributes.get("class") == "version"

    def handle_endtag(self, tag: str) -> None:
        self._table = "" if tag == "table" else self._table

    def handle_data(self, data: str) -> None:
        if self._cell:
            self.rows[-1].append(data.strip())
            self._cell = False
        if self._caption:
            image_id, version, _ = self.figures[-1]
            self.figures[-1] = (image_id, version, data.strip())
            self._caption = False


@needs_chromium
def test_the_report_groups_images_by_model_version(batches: Batches, tmp_path: Path) -> None:
    """Result documents of the lambda backend name the version that judged each image: the report
    counts images, anomalous ones and the rate per version (10 sorts after 2), and every image it
    draws says its version. The documents are b-1's, copied to site s2 on 2026-11-27 as versions
    2 and 10 of model inspection judged them (the other tests select other sites or days)."""
    s3, bucket = batches.cloud.client("s3"), batches.cloud.outputs.final_bucket
    judged: dict[str, list[dict[str, Any]]] = {"2": [], "10": []}
    for n, document in enumerate(batches.b1):
        version = "2" if n % 3 else "10"
        copy = {**document, "site": "s2", "batch_id": "b-3", "captured_at": f"2026-11-27T08:{n:02d}:00.000Z",
                "model": {"backend": "lambda", "name": "inspection", "version": version}}
        s3.put_object(Bucket=bucket, Key=f"results/s2/l1/d1/2026/11/27/{document['image_id']}.json",
                      Body=json.dumps(copy).encode(), ContentType="application/json")
        judged[version].append(copy)
    output = tmp_path / "versions.html"
    result = report(batches.cloud, output, "--site", "s2", "--since", "2026-11-27", "--until", "2026-11-28")
    assert result.returncode == 0, result.stderr

    page = VersionPage(rendered_dom(output, tmp_path / "profile"))
    expected = []
    for version in ("2", "10"):
        bad = sum(d["result"]["IsAnomalous"] for d in judged[version])
        expected.append(["inspection", version, str(len(judged[version])), str(bad),
                         _percent(bad, len(judged[version]))])
    assert [row for row in page.rows if row] == expected
    versions = {d["image_id"]: v for v, documents in judged.items() for d in documents}
    anomalous = {d["image_id"] for documents in judged.values() for d in documents if d["result"]["IsAnomalous"]}
    assert {image_id for image_id, _, _ in page.figures} == anomalous, "every anomalous image is drawn"
    for image_id, version, caption in page.figures:
        assert version == versions[image_id] and caption == f"model inspection version {version}"


# --- selections ------------------------------------------------------------------------------

def test_time_range_selects_by_capture_time_and_line_filter_narrows(batches: Batches, tmp_path: Path) -> None:
    def cards(*args: str) -> dict[str, str]:
        output = tmp_path / f"r{len(list(tmp_path.iterdir()))}.html"
        result = report(batches.cloud, output, *args)
        assert result.returncode == 0, result.stderr
        return Page(output.read_text()).cards

    def expected(documents: list[dict[str, Any]], batch_count: int) -> dict[str, str]:
        bad = sum(d["result"]["IsAnomalous"] for d in documents)
        return {"images": str(len(documents)), "anomalous": str(bad),
                "rate": _percent(bad, len(documents)), "batches": str(batch_count)}

    assert cards("--since", "2026-11-23T00:00Z", "--until", "2026-11-24T00:00Z") == expected(batches.b1, 1)
    assert cards("--since", "2026-11-23", "--until", "2026-11-26") == expected(batches.b1 + batches.b2, 2)
    assert cards("--since", "2026-11-23", "--until", "2026-11-26", "--line", "l2") == expected(batches.b2, 1)
    assert cards("--since", "2026-11-23", "--site", "s1", "--line", "l1", "--device", "d1") == expected(batches.b1, 1)
    # the bound is the capture time, not the day: b-2 was captured from 00:30 on the 25th
    first = min(d["captured_at"] for d in batches.b2)
    assert cards("--since", "2026-11-25T00:00Z", "--until", first)["images"] == "0"
    assert cards("--batch", "b-2")["images"] == str(len(batches.b2))


def test_an_empty_selection_is_a_report_that_says_so(batches: Batches, tmp_path: Path) -> None:
    output = tmp_path / "empty.html"
    result = report(batches.cloud, output, "--batch", "no-such-batch")
    assert result.returncode == 0 and "no result documents match" in result.stderr
    page = Page(output.read_text())
    assert page.cards["images"] == "0" and page.images == []
    assert "No result documents match this selection." in page.text


def test_wrong_arguments_and_a_missing_bucket_fail_with_a_message(batches: Batches, tmp_path: Path) -> None:
    both = report(batches.cloud, tmp_path / "x.html", "--batch", "b-1", "--since", "2026-11-23")
    assert both.returncode == 2 and "not both" in both.stderr
    neither = report(batches.cloud, tmp_path / "x.html")
    assert neither.returncode == 2 and "--batch" in neither.stderr
    env = {**os.environ, **CREDENTIALS}
    missing = subprocess.run(
        [sys.executable, "-m", "batchsight_tools.report", "--bucket", "no-such-bucket", "--batch", "b-1",
         "--output", str(tmp_path / "x.html"), "--endpoint-url", batches.cloud.outputs.endpoint_url],
        capture_output=True, text=True, timeout=60, env=env)
    assert missing.returncode == 1 and "NoSuchBucket" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1 and "; check --bucket (the stack output FinalBucketName)" \
        in missing.stderr and "Traceback" not in missing.stderr
    assert not (tmp_path / "x.html").exists()
    (tmp_path / "a-file").write_text("")
    unwritable = report(batches.cloud, tmp_path / "a-file" / "x.html", "--batch", batches.b1[0]["batch_id"])
    assert unwritable.returncode == 1 and "Traceback" not in unwritable.stderr
    assert unwritable.stderr.startswith(f"report failed writing {tmp_path / 'a-file' / 'x.html'}: ")
    assert len(unwritable.stderr.splitlines()) == 1


def test_mask_overlay_colours_only_the_anomalous_pixels() -> None:
    from batchsight_tools.report.images import overlay_mask, thumbnail

    grey = Image.new("RGB", (200, 100), (128, 128, 128))
    coloured = overlay_mask(grey, _mask_png((400, 200)), (400, 200))  # mask at full size, picture smaller
    left, right = coloured.getpixel((20, 50)), coloured.getpixel((180, 50))
    assert right == (128, 128, 128) and left[2] > 180 and left[0] < 100
    single = Image.new("L", (400, 200), 0)
    single.paste(255, (200, 0, 400, 200))
    buffer = io.BytesIO()
    single.save(buffer, format="PNG")
    red = overlay_mask(grey, buffer.getvalue(), (400, 200))  # a grey-scale mask is drawn red
    assert red.getpixel((20, 50)) == (128, 128, 128) and red.getpixel((180, 50))[0] > 160
    source = io.BytesIO()
    Image.new("RGB", (1600, 800), (10, 200, 10)).save(source, format="PNG")
    uri, width, height = thumbnail(source.getvalue(), None, 320)
    assert (width, height) == (320, 160) and uri.startswith("data:image/jpeg;base64,")
