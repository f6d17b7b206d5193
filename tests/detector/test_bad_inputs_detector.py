"""Bad inputs to `batchsight fit`, `evaluate` and `serve`: each a real process, one line back.

Every row (tests/bad_inputs.py) asserts the exit code (2: the user gave a wrong argument,
folder or file), one line on stderr that names the problem and says what to do, and no
traceback. The rows that need something only a test can make (a fitted model, a port that is
taken) are built in the tests below the table.
"""
from __future__ import annotations

import io
import shutil
import socket
from pathlib import Path

import pytest
from PIL import Image

from tests.bad_inputs import BadInput, check


def _jpeg(shade: int) -> bytes:
    image = Image.new("L", (64, 64), shade)
    image.paste(255 - shade, (20, 20, 40, 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


GOOD = {f"normal/good{n}.jpg": _jpeg(90 + 10 * n) for n in range(3)}
TRUNCATED = _jpeg(200)[:400]   # the header reads, the picture does not
LABELLED = {"test/normal/a.jpg": _jpeg(100), "test/anomaly/b.jpg": _jpeg(30)}
FIT = ["fit", "--normal", "{tmp}/normal", "--output", "{tmp}/m.npz"]
NOT_A_MODEL = {"notes.npz": "a text file, not a model", **LABELLED}
USAGE = 2

CASES = [
    BadInput("fit on a missing folder", ["fit", "--normal", "{tmp}/none", "--output", "{tmp}/m.npz"], USAGE,
             r"--normal .*/none: no such folder; give the folder of pictures of good parts"),
    BadInput("fit on a file instead of a folder", ["fit", "--normal", "{tmp}/one.jpg", "--output", "m.npz"],
             USAGE, r"--normal .*one\.jpg: a file, not a folder", {"one.jpg": _jpeg(100)}),
    BadInput("fit on an empty folder", FIT, USAGE,
             r"--normal .*normal holds no images \(\.jpeg, \.jpg, \.png\); put at least 3 pictures of good parts",
             {"normal/readme.txt": "no pictures here"}),
    BadInput("fit on a folder with one image", FIT, USAGE, r"holds 1 image .*put at least 3 pictures",
             {"normal/only.jpg": _jpeg(100)}),
    BadInput("fit on a folder with a file that is not an image", FIT, USAGE,
             r"normal/broken\.jpg: cannot decode image: not a JPEG, PNG .*; remove it from the folder or "
             r"replace it", {**GOOD, "normal/broken.jpg": b"this is not a picture"}),
    BadInput("fit on a folder with a truncated image", [*FIT, "--method", "aligned"], USAGE,
             r"normal/cut\.jpg: cannot decode image: .*; remove it", {**GOOD, "normal/cut.jpg": TRUNCATED}),
    BadInput("fit with a corrupt anomalous image", [*FIT, "--anomalous", "{tmp}/bad"], USAGE,
             r"bad/x\.png: cannot decode image", {**GOOD, "bad/x.png": b"\x89PNG\r\n\x1a\n garbage"}),
    BadInput("fit with a missing anomalous folder", [*FIT, "--anomalous", "{tmp}/nope"], USAGE,
             r"--anomalous .*nope: no such folder", GOOD),
    BadInput("fit with a wrong method", [*FIT, "--method", "deep"], USAGE,
             r"argument --method: invalid choice: 'deep'", GOOD),
    BadInput("fit with a negative working size", [*FIT, "--working-size", "-3"], USAGE,
             r"argument --working-size: must be a whole number of pixels from 16 to 1024, got '-3'", GOOD),
    BadInput("fit with a working size that is not a number", [*FIT, "--working-size", "big"], USAGE,
             r"argument --working-size: must be a whole number", GOOD),
    BadInput("fit with an unknown augmentation", [*FIT, "--augment", "flip_h,spin"], USAGE,
             r"argument --augment: unknown 'spin': give auto, none, or names from flip_h, ", GOOD),
    BadInput("fit aligned with an augmentation", [*FIT, "--method", "aligned", "--augment", "rot180"], USAGE,
             r"--augment applies to --method patchcore only", GOOD),
    BadInput("fit writing onto a folder", ["fit", "--normal", "{tmp}/normal", "--output", "{tmp}/normal"], USAGE,
             r"--output .*normal is a folder; give a file name such as", GOOD),
    BadInput("evaluate a file that is not a model", ["evaluate", "--model", "{tmp}/notes.npz", "--test", "{tmp}/test"],
             USAGE, r"^(?!.*pickle).*notes\.npz is not a batchsight model file .*a model file is the \.npz that "
                    r"'batchsight fit --output MODEL\.npz' writes", NOT_A_MODEL),
    BadInput("evaluate a missing model", ["evaluate", "--model", "{tmp}/none.npz", "--test", "{tmp}/test"], USAGE,
             r"--model .*none\.npz: no such file; give the \.npz that 'batchsight fit", LABELLED),
    BadInput("evaluate on a missing test folder", ["evaluate", "--model", "{tmp}/m.npz", "--test", "{tmp}/none"],
             USAGE, r"--test .*none: no such folder; give a folder with normal/ and anomaly/"),
    BadInput("evaluate on a folder without normal/ and anomaly/",
             ["evaluate", "--model", "{tmp}/m.npz", "--test", "{tmp}/flat"], USAGE,
             r"--test .*flat has no normal/ and no anomaly/; put images of good parts in normal/",
             {"flat/a.jpg": _jpeg(100)}),
    BadInput("evaluate on a folder without anomaly/", ["evaluate", "--model", "{tmp}/m.npz", "--test", "{tmp}/test"],
             USAGE, r"--test .*test has no anomaly/", {"test/normal/a.jpg": _jpeg(100)}),
    BadInput("evaluate on an empty anomaly/", ["evaluate", "--model", "{tmp}/m.npz", "--test", "{tmp}/test"], USAGE,
             r"test/anomaly holds no images .*AUROC needs both kinds",
             {"test/normal/a.jpg": _jpeg(100), "test/anomaly/.keep": ""}),
    BadInput("serve a missing model", ["serve", "--model", "{tmp}/none.npz"], USAGE,
             r"--model .*none\.npz: no such file; give the \.npz that 'batchsight fit --output"),
    BadInput("serve a file that is not a model", ["serve", "--model", "{tmp}/notes.npz", "--port", "0"], USAGE,
             r"^(?!.*pickle).*notes\.npz is not a batchsight model file", NOT_A_MODEL),
    BadInput("serve on a port out of range", ["serve", "--model", "m.npz", "--port", "70000"], USAGE,
             r"argument --port: must be a port number from 0 to 65535, got '70000'"),
    BadInput("serve on an address of another machine",
             ["serve", "--model", "m.npz", "--wait-for-model", "--host", "192.0.2.1", "--port", "0"], USAGE,
             r"--host 192\.0\.2\.1: cannot listen on .*; give an address of this machine"),
    BadInput("serve for a parent that is not ours", ["serve", "--model", "m.npz", "--parent", "1"], USAGE,
             r"--parent 1 is not the process that started this one .* it is for the component"),
    BadInput("serve with an unknown log level", ["serve", "--model", "m.npz"], USAGE,
             r"LOG_LEVEL 'LOUD' is not a log level: set DEBUG, INFO, WARNING or ERROR",
             environment={"LOG_LEVEL": "LOUD"}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: BadInput, tmp_path: Path) -> None:
    check(case, tmp_path)


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        check(BadInput("serve on a port in use", ["serve", "--model", "m.npz", "--wait-for-model",
                                                  "--port", str(port)], USAGE,
                       rf"--port {port}: 127\.0\.0\.1:{port} is in use .*; stop what listens there or give "
                       r"another --port"), tmp_path)


def test_a_corrupt_test_image_and_a_corrupt_model_are_named(tmp_path: Path, fitted_model: Path) -> None:
    shutil.copy(fitted_model, tmp_path / "m.npz")
    (tmp_path / "cut.npz").write_bytes(fitted_model.read_bytes()[:-300])
    check(BadInput("evaluate on a truncated test image",
                   ["evaluate", "--model", "{tmp}/m.npz", "--test", "{tmp}/test"], USAGE,
                   r"test/anomaly/cut\.jpg: cannot decode image: .*; remove it from the folder",
                   {**LABELLED, "test/anomaly/cut.jpg": TRUNCATED}), tmp_path)
    check(BadInput("serve a truncated model", ["serve", "--model", "{tmp}/cut.npz", "--port", "0"], USAGE,
                   r"cut\.npz is not a batchsight model file \(not a complete \.npz archive\)"), tmp_path)
