"""Every bad `batchsight demo` argument: one line that says what to do, exit 2, no traceback, nothing left.

Each row is a real `batchsight demo` process (tests/bad_inputs.py) with TMPDIR pointing at an
empty folder of the test's own; afterwards that folder is still empty and the test's folder
holds only what the row laid out (no work folder, no --keep folder, no report).
"""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from tests.bad_inputs import BadInput, check


def _jpeg(side: int = 96, shade: int = 128) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), (shade, shade, shade)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _layout(extra: dict[str, str | bytes]) -> dict[str, str | bytes]:
    """A valid --images folder at {tmp}/images, plus (or minus, with "") the files in ``extra``."""
    files: dict[str, str | bytes] = {f"images/train/normal/n{i}.jpg": _jpeg(shade=100 + i) for i in range(3)}
    files["images/test/normal/t0.jpg"] = _jpeg(shade=90)
    files["images/test/anomaly/a0.jpg"] = _jpeg(shade=30)
    for name, content in extra.items():
        path = "images/" + name
        if content == "":
            files.pop(path)
        else:
            files[path] = content
    return files


IMAGES = ["demo", "--images", "{tmp}/images"]
CASES = [
    BadInput("images: no such folder", ["demo", "--images", "{tmp}/nowhere"], 2,
             r"--images .*nowhere does not exist; give a folder with train/normal and test/\{normal,anomaly\}"),
    BadInput("images: a file, not a folder", IMAGES, 2, r"--images .*images is a file, not a folder; give a folder",
             files={"images": "not a folder"}),
    BadInput("images: no test/anomaly", IMAGES, 2,
             r"has no test/anomaly folder; it must hold train/normal and test/\{normal,anomaly\}",
             files=_layout({"test/anomaly/a0.jpg": ""})),
    BadInput("images: two normal images to fit on", IMAGES, 2,
             r"train/normal holds 2 images \(.jpg, .jpeg, .png\); fitting needs at least 3",
             files=_layout({"train/normal/n2.jpg": ""})),
    BadInput("images: an unreadable test image", IMAGES, 2,
             r"a1\.jpg: cannot decode image.*; remove it or replace it with a readable JPEG or PNG",
             files=_layout({"test/anomaly/a1.jpg": b"\xff\xd8 this is not a JPEG"})),
    BadInput("images: an unreadable training image", IMAGES, 2, r"n9\.jpg: cannot decode image",
             files=_layout({"train/normal/n9.jpg": b"GIF89a, not really"})),
    BadInput("images: a test image smaller than the gateway takes", IMAGES, 2,
             r"a1\.jpg is 32x32 px; the gateway takes sides of 64 to 4096 px",
             files=_layout({"test/anomaly/a1.jpg": _jpeg(side=32)})),
    BadInput("images: test folders without images", IMAGES, 2,
             r"test/normal and test/anomaly hold no images",
             files={**_layout({"test/normal/t0.jpg": "", "test/anomaly/a0.jpg": ""}),
                    "images/test/normal/README.txt": "no pictures here", "images/test/anomaly/a0.txt": "nor here"}),
    BadInput("count 0", ["demo", "--count", "0"], 2, r"argument --count: give a whole number of at least 1, not '0'"),
    BadInput("count negative", ["demo", "--count", "-3"], 2, r"argument --count: give a whole number"),
    BadInput("count not a number", ["demo", "--count", "many"], 2, r"argument --count: .*not 'many'"),
    BadInput("train below the fit's minimum", ["demo", "--train", "2"], 2, r"--train: .*at least 3"),
    BadInput("size below what the gateway takes", ["demo", "--size", "20"], 2, r"--size: .*from 64 to 2048"),
    BadInput("anomaly rate over 1", ["demo", "--anomaly-rate", "1.5"], 2, r"--anomaly-rate: give a share from 0 to 1"),
    BadInput("negative gap", ["demo", "--gap", "-1"], 2, r"--gap: give seconds from 0 to 60"),
    BadInput("zero timeout", ["demo", "--timeout", "0"], 2, r"--timeout: give seconds of at least 1"),
    BadInput("floor over 1", ["demo", "--min-recall", "2"], 2, r"--min-recall: give a share from 0 to 1"),
    BadInput("unknown backend", ["demo", "--backend", "lookout"], 2, r"--backend: invalid choice: 'lookout'"),
    BadInput("unknown inference mode", ["demo", "--inference", "everywhere"], 2, r"--inference: invalid choice"),
    BadInput("unknown method", ["demo", "--method", "deep"], 2, r"--method: invalid choice"),
    BadInput("keep: a file", ["demo", "--keep", "{tmp}/notes.txt"], 2, r"--keep .*notes\.txt is a file",
             files={"notes.txt": "mine"}),
    BadInput("keep: a folder of the user's", ["demo", "--keep", "{tmp}/mine"], 2,
             r"--keep .*mine holds other files; name a new or empty folder", files={"mine/thesis.tex": "precious"}),
    BadInput("keep: in a missing folder", ["demo", "--keep", "{tmp}/no/such/place"], 2,
             r"--keep .*: the folder .*no/such does not exist; create it first"),
    BadInput("report: a folder", ["demo", "--report", "{tmp}/out"], 2,
             r"--report .*out is a folder; name the HTML file to write", files={"out/other.html": "<html>"}),
    BadInput("report: in a missing folder", ["demo", "--report", "{tmp}/missing/run.html"], 2,
             r"--report .*run\.html: the folder .*missing does not exist; create it first"),
    BadInput("a valid keep with a bad count creates nothing", ["demo", "--keep", "{tmp}/new", "--count", "0"], 2,
             r"argument --count"),
    BadInput("unknown option", ["demo", "--colour", "red"], 2, r"unrecognized arguments: --colour red"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_demo_input(case: BadInput, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    temp = tmp_path / "scratch"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    check(case, tmp_path)
    assert list(temp.iterdir()) == [], "a bad argument left something in the temp folder"
    laid_out = set(case.files) | {parent.as_posix() for f in case.files for parent in Path(f).parents}
    made = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")} - {"scratch"}
    assert made <= laid_out, f"a bad argument made {sorted(made - laid_out)}"
