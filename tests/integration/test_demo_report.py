"""``batchsight demo --model-loop --report FILE``: issue #17's loop end to end, and the HTML report of the run.

The loop: version 1 judges the first stream; an operator answers two alerts over MQTT (one
defect confirmed, one false alarm: a good part photographed through lens dust); the gateway
writes the answers as label files; `batchsight dataset build` rebuilds the dataset with them,
`model fit`, `publish` (gated against version 1) and `deploy` make version 2 current; the
second stream is judged by it. The summary names both versions and which stream's images each
judged, counted from the result documents' ``model.version``.

The demo writes the report with the report package against its still-running local cloud's
final bucket, then ends (and its cloud with it). The page, once its script ran in headless
Chromium, must count every image of the run and its anomalous ones, group them by model
version, and show exactly the images the HMI got an alert for, each by file name with the
version that judged it, its thumbnail decoded.
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
    """The summary cards, the by-version table's rows, and each anomalous figure's file name, model
    version and whether its thumbnail decoded."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.cards: dict[str, str] = {}
        self.files: list[str] = []
        self.versions: dict[str, str] = {}   # file name -> the figure's data-model-version
        self.captions: dict[str, str] = {}   # file name -> its "model ... version ..." line
        self.loaded: list[str] = []
        self.by_version: list[list[str]] = []
        self._into: tuple[str, str] | None = None
        self._figure_version = ""
        self._table = ""
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = attributes.get("id", "")
        elif tag == "tr" and self._table == "by-version":
            self.by_version.append([])
        elif tag == "td" and self._table == "by-version":
            self._into = ("cell", "")
        if tag == "figure":
            self._figure_version = attributes.get("data-model-version", "")
        if attributes.get("id", "").startswith("count-"):
            self._into = ("card", attributes["id"][len("count-"):])
        elif tag == "div" and attributes.get("class") == "file":
            self._into = ("file", "")
        elif tag == "span" and attributes.get("class") == "version":
            self._into = ("version", "")
        elif tag == "img" and "thumb" in attributes.get("class", ""):
            self.loaded.append(attributes.get("data-loaded", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = ""

    def handle_data(self, data: str) -> None:
        if self._into is not None:
            kind, name = self._into
            if kind == "card":
                self.cards[name] = data.strip()
            elif kind == "cell":
                self.by_version[-1].append(data.strip())
            elif kind == "file":
                self.files.append(data.strip())
                self.versions[data.strip()] = self._figure_version
            else:
                self.captions[self.files[-1]] = data.strip()
            self._into = None


@needs_chromium
def test_demo_model_loop_and_the_report_of_its_run(tmp_path: Path) -> None:
    page = tmp_path / "out" / "run.html"
    page.parent.mkdir()
    output = passed(run_demo(tmp_path, *SMALL, "--model-loop", "--report", str(page)))
    table = summary(output)
    # the loop, step by step, with the real commands
    operator = re.findall(r"^  OPERATOR\s+(\S+)\s+(confirmed|false alarm) \((.+)\)$", output, re.M)
    assert [verdict for _, verdict, _ in operator] == ["confirmed", "false alarm"], output
    assert operator[1][0] == "dusty_lens_1.jpg" and operator[1][2] == "lens dust"
    answered = [name for name, _, _ in operator]
    assert table["operator feedback over MQTT"] == (f"2 answers: {answered[0]} confirmed, {answered[1]} false alarm; "
                                                    "2 label files in the final bucket")
    before, after = map(int, re.match(r"(\d+) images -> (\d+) \(\+2 from operator feedback;",
                                      table["dataset rebuilt (batchsight dataset build)"]).groups())
    assert after == before + 2, "the dataset grew by the two feedback labels"
    assert re.search(r"^    \$ batchsight dataset build .* --feedback batchsight-finalbucket --site demo-plant "
                     r"--line line-1 ", output, re.M)
    assert re.search(r"^ +from feedback: 2 \(1 normal, 1 anomaly\)$", output, re.M)
    assert table["version 2"].startswith("published and deployed; gate passed: candidate vs current version 1"), table
    # both versions, and which images each judged, from the result documents' model.version
    first, second = 17, 9    # 16 + the dusty good part; max(6, 16 // 2) + its dusty good part
    assert table["images dropped"].startswith(f"{first + second} (")
    assert table["result documents in the final bucket"] == f"{first + second}, one per image sent to the cloud"
    assert re.fullmatch(rf"{first} images \({first} of the first stream's {first}\), \d+ alerts; the good part "
                        r"photographed through lens dust: alerted", table["judged by inspection version 1"]), table
    assert re.fullmatch(rf"{second} images \({second} of the second stream's {second}\), \d+ alerts; the good part "
                        r"photographed through lens dust: (not )?alerted", table["judged by inspection version 2"])

    alerted = set(re.findall(r"^  ALERT\s+(\S+)", output, re.M))
    assert f"HTML report of this run: {page} ({first + second} images with a result document, {len(alerted)} " \
           "anomalous)" in output
    dom = Figures(rendered_dom(page, tmp_path / "profile"))
    assert dom.cards["images"] == str(first + second) and dom.cards["anomalous"] == str(len(alerted)), dom.cards
    version_alerts = {v: int(re.search(r"(\d+) alerts", table[f"judged by inspection version {v}"]).group(1))
                      for v in ("1", "2")}
    assert [row for row in dom.by_version if row] == [
        ["inspection", "1", str(first), str(version_alerts["1"]), f"{100 * version_alerts['1'] / first:.1f} %"],
        ["inspection", "2", str(second), str(version_alerts["2"]), f"{100 * version_alerts['2'] / second:.1f} %"],
    ], "the report groups the images by model version"
    assert sorted(dom.files) == sorted(alerted), "the page shows exactly the images the HMI was alerted to"
    for name in alerted:
        version = "2" if name.startswith(("later_", "dusty_lens_2")) else "1"
        assert dom.versions[name] == version and dom.captions[name] == f"model inspection version {version}", name
    assert dom.loaded == ["true"] * len(alerted), "every anomalous thumbnail decoded in the browser"
    assert sorted(p.name for p in page.parent.iterdir()) == ["run.html"], "written atomically, nothing else"
