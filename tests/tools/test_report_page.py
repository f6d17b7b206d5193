"""``batchsight report`` without S3: which keys a selection takes, and the page it renders.

The integration test (tests/integration/test_report.py) runs the command on the real
pipeline's output and opens the page in Chromium; these check the pure parts in milliseconds.
"""
from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from batchsight_tools.report.render import render
from batchsight_tools.report.results import Entry
from batchsight_tools.report.selection import Selection

IMAGE_ID = "ab" * 32
GENERATED = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _entry(n: int, *, anomalous: bool, confidence: float, line: str = "l1", batch: str = "b-1") -> Entry:
    document: dict[str, Any] = {
        "image_id": f"{n:064x}", "file_name": f'<b class="x">part</b> & "{n}".jpg', "site": "s1", "line": line,
        "device": "d1", "batch_id": batch, "captured_at": f"2026-11-23T08:0{n}:00Z",
        "result": {"IsAnomalous": anomalous, "Confidence": confidence},
        "model": {"backend": "local", "name": "detector"}}
    return Entry(key=f"results/s1/{line}/d1/2026/11/23/{n:064x}.json", document=document)


class _Cards(HTMLParser):
    """The summary cards' values and every tag, as a reader's browser sees them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cards: dict[str, str] = {}
        self.tags: list[str] = []
        self._card: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        identifier = dict(attrs).get("id") or ""
        self._card = identifier.removeprefix("count-") if identifier.startswith("count-") else None

    def handle_data(self, data: str) -> None:
        if self._card is not None:
            self.cards[self._card] = data
            self._card = None


def test_a_selection_narrows_the_listing_by_prefix_and_by_the_keys_day() -> None:
    selection = Selection(bucket="b", site="s1", line="l1", since=datetime(2026, 11, 23, tzinfo=UTC),
                          until=datetime(2026, 11, 24, tzinfo=UTC))
    assert selection.prefix() == "results/s1/l1/"
    assert selection.key_matches(f"results/s1/l1/d1/2026/11/23/{IMAGE_ID}.json")
    assert not selection.key_matches(f"results/s1/l1/d1/2026/11/24/{IMAGE_ID}.json")  # --until excluded
    assert not selection.key_matches(f"results/s1/l2/d1/2026/11/23/{IMAGE_ID}.json")
    assert not selection.key_matches(f"results/s1/l1/d1/2026/11/23/{IMAGE_ID}.jpg")
    assert Selection(bucket="b", site=None, line="l1").prefix() == "results/"  # no site: no narrower prefix


def test_a_document_is_taken_by_its_batch_or_its_exact_capture_time() -> None:
    in_batch = Selection(bucket="b", batch="b-1")
    assert in_batch.document_matches({"batch_id": "b-1"}) and not in_batch.document_matches({"batch_id": "b-2"})
    morning = Selection(bucket="b", since=datetime(2026, 11, 23, 8, tzinfo=UTC),
                        until=datetime(2026, 11, 23, 9, tzinfo=UTC))
    assert morning.document_matches({"captured_at": "2026-11-23T08:00:00Z"})
    assert not morning.document_matches({"captured_at": "2026-11-23T09:00:00Z"})
    assert not morning.document_matches({"captured_at": "not a time"})


def test_the_page_counts_every_document_and_escapes_what_documents_say() -> None:
    entries = [_entry(1, anomalous=True, confidence=0.9), _entry(2, anomalous=False, confidence=0.1),
               _entry(3, anomalous=True, confidence=0.7, line="l2", batch="b-2"),
               _entry(4, anomalous=False, confidence=0.2, line="l2", batch="b-2")]
    shown = [entries[0]]  # --max-images 1: the counts still include every document
    shown[0].thumbnail, shown[0].width, shown[0].height = "data:image/jpeg;base64,AAAA", 4, 4
    page = render(Selection(bucket="final", since=datetime(2026, 11, 23, tzinfo=UTC)), entries, shown,
                  generated=GENERATED)
    parsed = _Cards(page)
    assert parsed.cards == {"images": "4", "anomalous": "2", "rate": "50.0 %", "batches": "2"}
    assert 'id="by-line"' in page and 'id="by-batch"' in page
    assert "the 1 of 2 with the highest confidence" in page and "90.0 %" in page
    assert "b" not in parsed.tags and "&lt;b class=&quot;x&quot;&gt;" in page
    assert "Model: local / detector (4 images)." in page


def test_an_empty_selection_renders_a_page_that_says_so() -> None:
    page = render(Selection(bucket="final", batch="none"), [], [], generated=GENERATED)
    assert _Cards(page).cards["images"] == "0"
    assert "No result documents match this selection." in page and 'id="by-batch"' not in page
