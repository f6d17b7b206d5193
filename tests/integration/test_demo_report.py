"""``batchsight demo --report FILE``: the HTML report of the run it just did, checked as Chromium renders it.

The demo writes the report with the report package against its still-running local cloud's
final bucket, then ends (and its cloud with it). The page, once its script ran in headless
Chromium, must count every image of the run and its anomalous ones, and show exactly the images
the HMI got an alert for, each by file name, with its thumbnail decoded.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.integration.test_demo import SMALL, passed, run_demo, summary
from tests.integration.test_report import needs_chromium, rendered_dom

pytestmark = pytest.mark.integration


class Figures(HTMLParser):
    """The summary cards, and each anomalous figure's file name and whether its thumbnail decoded."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cards: dict[str, str] = {}
        self.files: list[str] = []
        self.loaded: list[str] = []
        self._into: tuple[str, str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if attributes.get("id", "").startswith("count-"):
            self._into = ("card", attributes["id"][len("count-"):])
        elif tag == "div" and attributes.get("class") == "file":
            self._into = ("file", "")
        elif tag == "img" and "thumb" in attributes.get("class", ""):
            self.loaded.append(attributes.get("data-loaded", ""))

    def handle_data(self, data: str) -> None:
        if self._into is not None:
            kind, name = self._into
            if kind == "card":
                self.cards[name] = data.strip()
            else:
                self.files.append(data.strip())
            self._into = None


@needs_chromium
def test_demo_writes_the_report_of_its_run(tmp_path: Path) -> None:
    page = tmp_path / "out" / "run.html"
    page.parent.mkdir()
    output = passed(run_demo(tmp_path, *SMALL, "--report", str(page)))
    alerted = set(re.findall(r"^  ALERT\s+(\S+)", output, re.M))
    assert alerted, "the small demo has defective parts"
    assert f"HTML report of this run: {page} (16 images with a result document, {len(alerted)} anomalous)" in output
    assert summary(output)["result documents in the final bucket"] == "16, one per image sent to the cloud"

    dom = Figures(rendered_dom(page, tmp_path / "profile"))
    assert dom.cards["images"] == "16" and dom.cards["anomalous"] == str(len(alerted)), dom.cards
    assert sorted(dom.files) == sorted(alerted), "the page shows exactly the images the HMI was alerted to"
    assert dom.loaded == ["true"] * len(alerted), "every anomalous thumbnail decoded in the browser"
    assert sorted(p.name for p in page.parent.iterdir()) == ["run.html"], "written atomically, nothing else"
