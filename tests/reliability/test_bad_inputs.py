"""A corpus of bad (and awkward but good) drops, each with its expected outcome.

The real watcher (watchdog) and ingestor run on a real folder: a file is either journaled,
quarantined with a reason beside it, or, when it is not ours (links, FIFOs, folders, temporary
names), left exactly where it is. Nothing is ever silently deleted.
"""
from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from batchsight.config import config_from_dict
from batchsight.ingest import Ingestor
from batchsight.journal import Journal
from batchsight.verifier import PixelVerifier
from batchsight.watcher import DropFolderWatcher
from tests.support import report_reliability

ACCEPT, QUARANTINE, IGNORE = "accepted", "quarantined", "ignored"


def _image(mode: str = "RGB", size: tuple[int, int] = (96, 96), fmt: str = "JPEG", **save: object) -> bytes:
    color = {"RGB": (120, 80, 40), "L": 128, "CMYK": (10, 20, 30, 40), "I;16": 30000}[mode]
    image = Image.new(mode, size, color)
    image.putpixel((5, 5), {"RGB": (255, 0, 0), "L": 255, "CMYK": (0, 0, 0, 255), "I;16": 1}[mode])
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    return _image(exif=exif.tobytes())


def _bomb() -> bytes:
    out = io.BytesIO()
    Image.new("1", (30000, 30000)).save(out, "PNG")
    return out.getvalue()


def _corrupt_scan() -> bytes:
    """Complete (SOI ... EOI) but its scan names components the frame does not have: only a
    decoder sees it (libjpeg shrugs off mere garbage in the compressed data)."""
    data = bytearray(_image(size=(200, 200)))
    scan = data.index(b"\xff\xda")
    data[scan + 4:scan + 8] = b"\x09\x09\x09\x09"
    return bytes(data)


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _grows_slowly(folder: Path) -> None:
    data = _image(size=(200, 200))
    def writer() -> None:
        with open(folder / "slow camera.jpg", "wb") as out:
            for start in range(0, len(data), len(data) // 6 + 1):
                out.write(data[start:start + len(data) // 6 + 1])
                out.flush()
                time.sleep(0.5)
    threading.Thread(target=writer).start()


CORPUS: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("zero bytes", _write("empty.jpg", b""), QUARANTINE, "empty"),
    ("truncated jpeg", _write("cut.jpg", _image(size=(300, 300))[:900]), QUARANTINE, "decode"),
    ("png named .jpg", _write("liar.jpg", _image(fmt="PNG")), ACCEPT, ""),
    ("complete jpeg, corrupt pixels", _write("scrambled.jpg", _corrupt_scan()), QUARANTINE, "decode"),
    ("text named .jpg", _write("notes.jpg", b"shift report: all good\n"), QUARANTINE, "not a JPEG or PNG"),
    ("decompression bomb", _write("bomb.png", _bomb()), QUARANTINE, "bomb"),
    ("too small", _write("tiny.png", _image(size=(32, 32), fmt="PNG")), QUARANTINE, "px"),
    ("too large a side", _write("wide.png", _image(size=(5000, 70), fmt="PNG")), QUARANTINE, "px"),
    ("16-bit grayscale", _write("deep.png", _image(mode="I;16", fmt="PNG")), ACCEPT, ""),
    ("cmyk jpeg", _write("print.jpg", _image(mode="CMYK")), ACCEPT, ""),
    ("grayscale jpeg", _write("gray.jpg", _image(mode="L")), ACCEPT, ""),
    ("exif rotation", _write("rotated.jpg", _exif_rotated()), ACCEPT, ""),
    ("unicode and spaces", _write("Prüfteil Nr 7 – Ö.jpg", _image(size=(97, 96))), ACCEPT, ""),
    ("very long name", _write("x" * 200 + ".jpg", _image(size=(98, 96))), ACCEPT, ""),
    ("dots in the name", _write("..weird..name...jpg", _image(size=(99, 96))), IGNORE, ""),  # hidden: starts with '.'
    ("double dots inside", _write("part..7.jpg", _image(size=(100, 96))), ACCEPT, ""),
    ("same bytes, second name", lambda f: [(f / n).write_bytes(_image(size=(101, 96))) for n in ("a.jpg", "b.jpg")],
     "one accepted, one duplicate", "duplicate"),
    ("grows for 3 s", _grows_slowly, ACCEPT, ""),
    ("symlink to /etc/passwd", lambda f: os.symlink("/etc/passwd", f / "passwd.jpg"), IGNORE, ""),
    ("fifo", lambda f: os.mkfifo(f / "pipe.jpg"), IGNORE, ""),
    ("folder named like an image", lambda f: (f / "folder.jpg").mkdir(), IGNORE, ""),
    ("temporary name", _write("upload.jpg.part", _image(size=(102, 96))), IGNORE, ""),
]


@pytest.fixture
def ingest_loop(tmp_path: Path):
    config = config_from_dict({
        "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
        "ingest": {"stable_seconds": 1.0},
        "aws": {"source_bucket": "s", "final_bucket": "f", "queue_url": "q", "state_machine_arn": "a"}})
    config.drop_folder.mkdir()
    journal = Journal(config.journal_path)
    ingestor = Ingestor(config, journal)
    verifier = PixelVerifier(config, journal)
    verifier.start()
    watcher = DropFolderWatcher(config.drop_folder, config.ingest.stable_seconds,
                                config.ingest.rescan_seconds, config.ingest.subfolders)
    watcher.start()

    def run_until_quiet(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            outcomes = ingestor.ingest_many(watcher.complete_files())
            verifier.submit([o.image_id for o in outcomes if o.image_id])
            time.sleep(0.1)

    yield config, journal, run_until_quiet
    watcher.stop()
    verifier.stop()
    journal.close()


def test_every_drop_has_its_expected_outcome(ingest_loop) -> None:
    config, journal, run_until_quiet = ingest_loop
    for _, make, _, _ in CORPUS:
        make(config.drop_folder)
    run_until_quiet(6.0)
    journaled = {r["file_name"] for r in journal._conn.execute("SELECT file_name FROM images")}
    reasons = {p.name[:-len(".reason.txt")].split("-", 1)[1]: p.read_text()
               for p in config.quarantine_folder.glob("*.reason.txt")}
    left = {p.name for p in config.drop_folder.iterdir()}
    expected_accepts = {"liar.jpg", "deep.png", "print.jpg", "gray.jpg", "rotated.jpg", "Prüfteil Nr 7 – Ö.jpg",
                        "x" * 200 + ".jpg", "part..7.jpg", "slow camera.jpg"}
    assert expected_accepts <= journaled
    assert len({"a.jpg", "b.jpg"} & journaled) == 1
    for label, _, expected, reason in CORPUS:
        if expected == QUARANTINE or reason == "duplicate":
            assert any(reason in text for text in reasons.values()), f"{label}: no reason mentioning {reason!r}"
    assert {"empty.jpg", "cut.jpg", "scrambled.jpg", "notes.jpg", "bomb.png", "tiny.png", "wide.png"} <= set(reasons)
    assert journal.counts()["received"] == 0, "every journaled image was decoded"
    assert {"..weird..name...jpg", "passwd.jpg", "pipe.jpg", "folder.jpg", "upload.jpg.part"} == left
    assert Path("/etc/passwd").read_text(), "the link's target is untouched"
    assert journal.counts()["quarantined"] == len(reasons) == 8
    dropped = len(CORPUS) + 1  # "same bytes, second name" drops two files
    report_reliability("bad-inputs", dropped=dropped, accounted=len(journaled) + len(reasons) + len(left),
                       duplicates=0, recover_s=None)
