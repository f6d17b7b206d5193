"""The docs hold what a new user needs and no figure typed by hand.

README.md is a front page (under 15 KB) that starts with the two commands (the demo's, then the
test command CI runs verbatim); every relative link in it and in docs/ resolves; every
configuration key and stack parameter is in the reference; and every table of figures (or pasted
program output) sits under the line naming the command that produced it and its date.

What counts as a table of figures: a markdown table with a number in a body cell, outside inline
code (`batch.max_images`, `--cap 40` are names, not figures) and not glued to a word (S3, v1,
cp313). Reference tables are exempt by their first header cell (``REFERENCE_HEADERS``: setting,
parameter, metric, topic, ...): their numbers are defaults, limits and units, which the code
defines, not measurements. Every other table with a number needs, within the 6 lines above it, a
line with a backticked command (python, pytest, batchsight, du, ...) and a YYYY-MM-DD date; so do
fenced ``text`` blocks (pasted program output) with a number in them.
"""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support import REPO, TABLE_END, TABLE_START, ReliabilityFigure, reliability_table, write_reliability_table

README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README, *DOCS, REPO / "bench" / "README.md"]
MAX_README_BYTES = 15_000
DEMO = "python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[demo]' && batchsight demo"
TEST_INSTALL = "pip install -e '.[test]'"

REFERENCE_HEADERS = {"setting", "parameter", "metric", "topic", "backend", "path", "package", "folder",
                     "script", "document", "inference.mode"}
PROVENANCE_LINES = 6
COMMAND = re.compile(r"`(?:python3?|pytest|batchsight|du|sam|gdk|bash)\b[^`]*`")
DATE = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")
FIGURE = re.compile(r"(?<![\w.-])\d")  # a digit that starts a number, not part of a name like S3 or v1
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _outside_fences(text: str) -> list[tuple[int, str]]:
    """Numbered lines outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def _without_code(line: str) -> str:
    return re.sub(r"`[^`]*`", "``", line)


def _has_provenance(lines: list[str], start: int) -> bool:
    return any(COMMAND.search(line) and DATE.search(line) for line in lines[max(0, start - PROVENANCE_LINES):start])


def figures_without_provenance(text: str) -> list[str]:
    """The first line of each table of figures, or pasted output, with no command and date above it."""
    lines = text.splitlines()
    problems = []
    blocks: list[list[int]] = []
    for number, line in _outside_fences(text):
        if line.lstrip().startswith("|"):
            if blocks and blocks[-1][-1] == number - 1:
                blocks[-1].append(number)
            else:
                blocks.append([number])
    for block in blocks:
        header = lines[block[0]].strip().strip("|").split("|")[0].strip().strip("`").lower()
        body = [_without_code(lines[n]) for n in block[2:]]
        if header in REFERENCE_HEADERS or not any(FIGURE.search(line) for line in body):
            continue
        if not _has_provenance(lines, block[0]):
            problems.append(lines[block[0]])
    starts = [n for n, line in enumerate(lines) if line.strip() == "```text"]
    for start in starts:
        end = next((n for n in range(start + 1, len(lines)) if lines[n].strip() == "```"), len(lines))
        if any(FIGURE.search(line) for line in lines[start + 1:end]) and not _has_provenance(lines, start):
            problems.append(lines[start + 1] if start + 1 < len(lines) else lines[start])
    return problems


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().replace("`", "").lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    for _, line in _outside_fences(path.read_text(encoding="utf-8")):
        if match := re.match(r"#{1,6}\s+(.*)", line):
            slug, n = _slug(match.group(1)), 1
            while slug in anchors:
                slug, n = f"{_slug(match.group(1))}-{n}", n + 1
            anchors.add(slug)
    return anchors


def _command_lines(text: str) -> list[str]:
    """The non-empty lines of the ```sh blocks, in order."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            inside = line.strip() == "```sh" and not inside
            continue
        if inside and line.strip():
            lines.append(line.strip())
    return lines


def test_readme_is_a_front_page_under_15_kb() -> None:
    size = len(README.read_bytes())
    assert size < MAX_README_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_readme_starts_with_the_demo_and_the_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    first, second = _command_lines(text)[:2]
    assert first == DEMO
    assert second.startswith("{ { command -v mosquitto") and TEST_INSTALL in second
    assert second.endswith("pytest -n auto --dist worksteal")
    ci_runs = next(line for line in text.splitlines() if TEST_INSTALL in line).strip()  # what .ci/run greps
    assert ci_runs == second


def test_readme_says_what_the_test_run_downloads_and_skips() -> None:
    text = README.read_text(encoding="utf-8")
    assert ".tools/" in text and "du -sh .tools" in text
    assert "../shared" in text and "skipped" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for _, line in _outside_fences(page.read_text(encoding="utf-8")):
        for target in LINK.findall(_without_code(line)):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file, _, anchor = target.partition("#")
            path = (page.parent / file).resolve() if file else page
            if not path.exists() or (anchor and path.suffix == ".md" and anchor not in _anchors(path)):
                broken.append(target)
    assert broken == []


def test_docs_cover_the_topics_the_readme_points_to() -> None:
    names = {p.name for p in DOCS}
    assert {"architecture.md", "deploying.md", "configuration.md", "contracts.md", "edge-inference.md", "cost.md",
            "detector.md", "reliability.md", "benchmarks.md"} <= names
    readme = README.read_text(encoding="utf-8")
    assert all(f"docs/{name}" in readme for name in names), "a page of docs/ is not reachable from the README"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_table_of_figures_names_its_command_and_date(page: Path) -> None:
    assert figures_without_provenance(page.read_text(encoding="utf-8")) == []


def test_the_figure_check_catches_a_hand_typed_table_and_spares_references() -> None:
    typed = "Latest run:\n\n| figure | value |\n|---|---|\n| ingest | 10,548 img/s |\n"
    measured = "Written by `python bench/x.py` on 2026-12-04.\n\n" + typed.split("\n", 2)[2]
    reference = "| setting | default |\n|---|---|\n| `batch.max_images` | 500 |\n"
    names = "| figure | value |\n|---|---|\n| `--cap 40` | S3 and v1 |\n"
    pasted = "Output:\n\n```text\nbatchsight 3.57 0.82\n```\n"
    assert figures_without_provenance(typed) == ["| figure | value |"]
    assert figures_without_provenance(measured) == []
    assert figures_without_provenance(reference) == []
    assert figures_without_provenance(names) == []
    assert figures_without_provenance(pasted) == ["batchsight 3.57 0.82"]


def _config_keys(cls: type, prefix: str = "") -> set[str]:
    keys = set()
    for field in dataclasses.fields(cls):
        kind = field.default_factory if field.default_factory is not dataclasses.MISSING else None
        if kind is not None and dataclasses.is_dataclass(kind):
            keys |= _config_keys(kind, f"{prefix}{field.name}.")
        else:
            keys.add(prefix + field.name)
    return keys


def _recipe_keys(data: dict[str, object], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        if name == "accessControl":
            continue
        keys |= _recipe_keys(value, f"{prefix}{name}.") if isinstance(value, dict) else {prefix + name}
    return keys


def test_the_configuration_reference_names_every_setting_and_stack_parameter() -> None:
    from batchsight.config import Config

    recipe = yaml.safe_load((REPO / "recipe.yaml").read_text(encoding="utf-8"))
    settings = _config_keys(Config) | _recipe_keys(recipe["ComponentConfiguration"]["DefaultConfiguration"])
    template = (REPO / "cloud" / "template.yaml").read_text(encoding="utf-8")
    parameters = re.search(r"^Parameters:\n(.*?)^\S", template, re.S | re.M)
    assert parameters
    names = set(re.findall(r"^  (\w+):", parameters.group(1), re.M))
    reference = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    missing = sorted(name for name in settings | names if f"`{name}`" not in reference)
    assert missing == []


def test_the_reliability_table_is_headed_by_its_command_and_fills_the_marked_place(tmp_path: Path) -> None:
    figures = [ReliabilityFigure("kill9", "tests/reliability/test_kill9.py::test_x", 30, 30, 0, 3.25),
               ReliabilityFigure("bad-inputs", "tests/reliability/test_b.py::test_y[a|b]", 23, 23, 0, None)]
    table = reliability_table(figures, args=["tests/reliability", "--reliability-table", "docs/r.md"],
                              day="2026-12-04", outcomes={"tests/reliability/test_kill9.py::test_x": "passed"})
    lines = table.splitlines()
    assert lines[0].startswith("Written by `pytest tests/reliability --reliability-table docs/r.md` on 2026-12-04")
    assert "1 did not pass (the whole run: 1 passed)." in lines[0]
    assert lines[4] == "| kill9 | `reliability/test_kill9.py::test_x` | 30 | 30 | 0 | 3.2 | passed |"
    assert lines[5] == "| bad-inputs | `reliability/test_b.py::test_y[a\\|b]` | 23 | 23 | 0 | n/a | unknown |"
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nbefore\n\n{TABLE_START}\nold\n{TABLE_END}\n\nafter\n")
    write_reliability_table(page, table)
    assert page.read_text() == f"# Title\n\nbefore\n\n{TABLE_START}\n{table}{TABLE_END}\n\nafter\n"
    assert figures_without_provenance(page.read_text()) == []
    bare = tmp_path / "new" / "figures.md"
    write_reliability_table(bare, table)
    assert bare.read_text() == table


def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=REPO,
                          env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300)


def test_the_reliability_table_option_writes_what_the_tests_reported(tmp_path: Path) -> None:
    (tmp_path / "test_scenarios.py").write_text(
        "from tests.support import report_reliability\n\n"
        "def test_one():\n"
        "    report_reliability('first', dropped=3, accounted=3, duplicates=0, recover_s=1.25)\n\n"
        "def test_two():\n"
        "    report_reliability('second', dropped=2, accounted=1, duplicates=1, recover_s=None)\n"
        "    assert False\n")
    out = tmp_path / "figures.md"
    run = _pytest("-p", "tests.conftest", "-c", str(REPO / "pyproject.toml"), str(tmp_path / "test_scenarios.py"),
                  "--reliability-table", str(out))
    assert run.returncode == 1, run.stdout + run.stderr
    lines = out.read_text().splitlines()
    assert COMMAND.search(lines[0]) and DATE.search(lines[0]) and "--reliability-table" in lines[0], lines[0]
    rows = [line for line in lines if line.startswith("| first") or line.startswith("| second")]
    assert rows[0].endswith("| 3 | 3 | 0 | 1.2 | passed |") and "test_one" in rows[0]
    assert rows[1].endswith("| 2 | 1 | 1 | n/a | failed |") and "test_two" in rows[1]


def test_skips_for_a_missing_shared_folder_are_one_summary_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-shared"
    run = _pytest("tests/integration/test_bench_edge.py", env={"BATCHSIGHT_SHARED": str(missing)})
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    summary = [line for line in lines if "skipped:" in line]
    assert summary == [f"1 test skipped: {missing} (BATCHSIGHT_SHARED: labelled images, Greengrass schemas, "
                       "the archived Lookout for Vision API model) not found"], run.stdout
    assert not any(line.startswith("SKIPPED") for line in lines), "the skip is listed one by one too"
    assert "1 skipped" in lines[-1]
