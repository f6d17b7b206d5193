"""ingest.py: a real Journal, real folders, real images; nothing is ever deleted."""
from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from PIL import Image

from batchsight.config import Config, config_from_dict
from batchsight.ingest import IngestOutcome, Ingestor
from batchsight.journal import ImageState, Journal

AWS = {"source_bucket": "src", "final_bucket": "final", "queue_url": "http://127.0.0.1/q",
       "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm"}


def make_image(fmt: str = "JPEG", size: tuple[int, int] = (160, 120), seed: int = 0) -> bytes:
    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, 120))
    image.paste((255, 255, 255), (seed % 50, 10, seed % 50 + 40, 50))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return config_from_dict({"drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                             "aws": AWS})


@pytest.fixture
def journal(config: Config) -> Iterator[Journal]:
    journal = Journal(config.journal_path)
    yield journal
    journal.close()


@pytest.fixture
def ingestor(config: Config, journal: Journal) -> Ingestor:
    config.drop_folder.mkdir(parents=True, exist_ok=True)
    return Ingestor(config, journal)


def drop(config: Config, name: str, data: bytes) -> Path:
    path = config.drop_folder / name
    path.write_bytes(data)
    return path


def all_files(root: Path) -> list[Path]:
    """Every regular file under root except the journal's own files."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("journal.sqlite3"))


def quarantined_files(config: Config) -> list[Path]:
    return sorted(p for p in config.quarantine_folder.iterdir() if not p.name.endswith(".reason.txt"))


def test_creates_spool_and_quarantine_folders(config: Config, journal: Journal) -> None:
    Ingestor(config, journal)
    assert (config.work_folder / "spool").is_dir()
    assert config.quarantine_folder.is_dir()


def test_valid_jpeg_is_moved_to_spool_and_journaled(config: Config, journal: Journal, ingestor: Ingestor) -> None:
    data = make_image("JPEG")
    path = drop(config, "cam1_0001.jpg", data)
    mtime = 1_714_557_600.25  # 2024-05-01T10:00:00.250Z
    os.utime(path, (mtime, mtime))
    sha = hashlib.sha256(data).hexdigest()

    outcome = ingestor.ingest(path)

    assert isinstance(outcome, IngestOutcome)
    assert outcome.accepted and outcome.image_id == sha and outcome.reason is None and outcome.path == path
    spooled = config.work_folder / "spool" / f"{sha}.jpg"
    assert not path.exists()
    assert spooled.read_bytes() == data
    record = journal.get(sha)
    assert record is not None
    assert record.state is ImageState.VALIDATED and record.batch_id is None
    assert record.file_name == "cam1_0001.jpg"
    assert record.path == str(spooled)
    assert (record.ext, record.size, record.width, record.height) == ("jpg", len(data), 160, 120)
    assert record.captured_at == "2024-05-01T10:00:00.250Z"
    assert datetime.fromisoformat(record.captured_at.replace("Z", "+00:00")).tzinfo == timezone.utc
    assert journal.counts()["quarantined"] == 0


def test_png_named_jpg_is_spooled_as_png(config: Config, journal: Journal, ingestor: Ingestor) -> None:
    data = make_image("PNG")
    outcome = ingestor.ingest(drop(config, "photo.jpg", data))
    assert outcome.accepted
    spooled = config.work_folder / "spool" / f"{outcome.image_id}.png"
    assert spooled.read_bytes() == data
    record = journal.get(outcome.image_id or "")
    assert record is not None and record.ext == "png" and record.file_name == "photo.jpg"


@pytest.mark.parametrize("name,data,expected", [
    ("notes.jpg", b"exposure 1/250\n", "not a JPEG or PNG"),
    ("empty.png", b"", "empty file"),
    ("tiny.png", None, "32x32"),
])
def test_invalid_file_is_quarantined_with_reason(config: Config, journal: Journal, ingestor: Ingestor,
                                                  name: str, data: bytes | None, expected: str) -> None:
    if data is None:
        data = make_image("PNG", (32, 32))
    path = drop(config, name, data)
    before = journal.counts()["quarantined"]

    outcome = ingestor.ingest(path)

    assert not outcome.accepted and outcome.image_id is None
    assert outcome.reason is not None and expected in outcome.reason
    assert not path.exists()
    [moved] = quarantined_files(config)
    assert moved.name.endswith(f"-{name}")
    assert moved.read_bytes() == data
    reason_file = moved.with_name(moved.name + ".reason.txt")
    assert reason_file.read_text().strip() == outcome.reason
    assert journal.counts()["quarantined"] == before + 1
    assert journal.counts()["validated"] == 0


def test_truncated_jpeg_is_quarantined(config: Config, journal: Journal, ingestor: Ingestor) -> None:
    data = make_image("JPEG", (400, 300), seed=3)
    outcome = ingestor.ingest(drop(config, "cut.jpg", data[: len(data) // 2]))
    assert outcome.reason is not None and "does not decode" in outcome.reason
    assert journal.counts()["quarantined"] == 1


def test_duplicate_under_another_name_is_quarantined(config: Config, journal: Journal, ingestor: Ingestor) -> None:
    data = make_image("JPEG", seed=5)
    first = ingestor.ingest(drop(config, "a.jpg", data))
    assert first.accepted
    second_path = drop(config, "b.jpg", data)

    second = ingestor.ingest(second_path)

    assert not second.accepted and second.image_id is None
    assert second.reason is not None and "duplicate" in second.reason and first.image_id in second.reason
    assert not second_path.exists()
    [moved] = quarantined_files(config)
    assert moved.name.endswith("-b.jpg") and moved.read_bytes() == data
    assert "duplicate" in moved.with_name(moved.name + ".reason.txt").read_text()
    # the first copy is untouched: still spooled and journaled under its first name
    spooled = config.work_folder / "spool" / f"{first.image_id}.jpg"
    assert spooled.read_bytes() == data
    record = journal.get(first.image_id or "")
    assert record is not None and record.file_name == "a.jpg"
    counts = journal.counts()
    assert counts["validated"] == 1 and counts["quarantined"] == 1


def test_duplicate_of_an_image_further_along_is_quarantined(config: Config, journal: Journal,
                                                            ingestor: Ingestor) -> None:
    data = make_image("PNG", seed=8)
    first = ingestor.ingest(drop(config, "a.png", data))
    assert first.image_id is not None
    journal.advance([first.image_id], ImageState.UPLOADED)
    (config.work_folder / "spool" / f"{first.image_id}.png").unlink()  # as if retired later
    journal.advance([first.image_id], ImageState.ALERTED)
    outcome = ingestor.ingest(drop(config, "again.png", data))
    assert outcome.reason is not None and "duplicate" in outcome.reason


def test_interrupted_move_is_completed_not_quarantined(config: Config, journal: Journal, ingestor: Ingestor) -> None:
    """A crash between journal.add and the rename: the next run finds the row but no spool file."""
    data = make_image("JPEG", seed=11)
    sha = hashlib.sha256(data).hexdigest()
    spooled = config.work_folder / "spool" / f"{sha}.jpg"
    path = drop(config, "cam.jpg", data)
    assert journal.add({"image_id": sha, "file_name": "cam.jpg", "path": str(spooled), "ext": "jpg",
                        "size": len(data), "width": 160, "height": 120,
                        "captured_at": "2024-05-01T10:00:00.000Z"})
    assert not spooled.exists()

    outcome = ingestor.ingest(path)

    assert outcome.accepted and outcome.image_id == sha
    assert spooled.read_bytes() == data
    assert not path.exists()
    assert quarantined_files(config) == []
    counts = journal.counts()
    assert counts["validated"] == 1 and counts["quarantined"] == 0


def test_vanished_file_gives_an_empty_outcome(config: Config, journal: Journal, ingestor: Ingestor) -> None:
    outcome = ingestor.ingest(config.drop_folder / "gone.jpg")
    assert outcome.image_id is None and outcome.reason is None
    assert outcome.path == config.drop_folder / "gone.jpg"
    assert journal.counts() == {**{s.value: 0 for s in ImageState}, "quarantined": 0}
    assert all_files(config.work_folder) == []


def test_nothing_is_ever_deleted(config: Config, journal: Journal, ingestor: Ingestor, tmp_path: Path) -> None:
    good = [make_image("JPEG", seed=n) for n in range(3)] + [make_image("PNG", seed=9)]
    files = {f"good-{n}.img": data for n, data in enumerate(good)}
    files.update({"dup.jpg": good[0], "text.jpg": b"hello", "empty.jpg": b"",
                  "small.png": make_image("PNG", (20, 20)), "cut.jpg": good[1][:200]})
    paths = [drop(config, name, data) for name, data in files.items()]
    before = sorted(hashlib.sha256(d).hexdigest() for d in files.values())

    outcomes = [ingestor.ingest(p) for p in paths]

    assert sum(o.accepted for o in outcomes) == 4
    assert sum(not o.accepted for o in outcomes) == 5
    assert list(config.drop_folder.iterdir()) == []
    images = [p for p in all_files(tmp_path) if not p.name.endswith(".reason.txt")]
    assert len(images) == len(files)
    assert sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in images) == before
    reasons = [p for p in all_files(config.quarantine_folder) if p.name.endswith(".reason.txt")]
    assert len(reasons) == 5
    assert journal.counts()["quarantined"] == 5 and journal.counts()["validated"] == 4


@pytest.mark.xfail(reason="BUG: ingest.py quarantine() names the target '{%Y%m%dT%H%M%S}-{name}' and moves with "
                          "os.replace, so two files with the same name quarantined in the same second overwrite "
                          "each other (and their .reason.txt; the journal's INSERT OR REPLACE counts one): the "
                          "first file is lost; make the name unique (e.g. add the sha256 or a counter) and never "
                          "replace an existing target", strict=True)
def test_two_rejects_with_the_same_name_in_one_second_are_both_kept(config: Config, journal: Journal,
                                                                     ingestor: Ingestor) -> None:
    for attempt in range(5):  # retry in the rare case the clock's second ticks between the two
        first, second = f"first bad file {attempt}".encode(), f"second bad file {attempt}".encode()
        stamp = time.strftime("%Y%m%dT%H%M%S")
        ingestor.ingest(drop(config, "frame.jpg", first))
        ingestor.ingest(drop(config, "frame.jpg", second))
        if time.strftime("%Y%m%dT%H%M%S") == stamp:
            break
    contents = {p.read_bytes() for p in quarantined_files(config)}
    assert first in contents and second in contents
