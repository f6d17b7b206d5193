"""ingest.py, one file at a time: a real Journal, real folders, real images; nothing is ever deleted.

The fixtures (config, journal, ingestor) are in conftest.py; a crash's leftovers and unreadable
files are in test_ingest_recovery.py, groups and subfolders in test_ingest_groups.py.
"""
from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import datetime, UTC
from pathlib import Path

import pytest
from PIL import Image

from batchsight.config import Config, config_from_dict
from batchsight.ingest import IngestOutcome, Ingestor
from batchsight.journal import ImageState, Journal
from tests.gateway.ingest_support import AWS, all_files, drop, make_image, quarantined_files


def test_creates_spool_and_quarantine_folders(config: Config, journal: Journal) -> None:
    Ingestor(config, journal)
    assert (config.work_folder / "spool").is_dir()
    assert (config.work_folder / "staging").is_dir()
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
    assert record.state is ImageState.RECEIVED and record.batch_id is None  # decoded later: verifier.py
    assert record.file_name == "cam1_0001.jpg"
    assert record.path == str(spooled)
    assert (record.ext, record.size, record.width, record.height) == ("jpg", len(data), 160, 120)
    assert record.captured_at == "2024-05-01T10:00:00.250Z"
    assert datetime.fromisoformat(record.captured_at.replace("Z", "+00:00")).tzinfo == UTC
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
    assert second.reason is not None and "duplicate" in second.reason and str(first.image_id) in second.reason
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
    assert counts["received"] == 1 and counts["quarantined"] == 1


def test_the_same_bytes_twice_in_one_group_keep_the_first(config: Config, journal: Journal,
                                                         ingestor: Ingestor) -> None:
    data = make_image("JPEG", seed=6)
    first, second = ingestor.ingest_many([drop(config, "a.jpg", data), drop(config, "b.jpg", data)])
    assert first.accepted and not second.accepted
    assert second.reason == f"duplicate of image {first.image_id} already journaled"
    [moved] = quarantined_files(config)
    assert moved.name.endswith("-b.jpg") and moved.read_bytes() == data
    assert (config.work_folder / "spool" / f"{first.image_id}.jpg").read_bytes() == data
    assert journal.counts()["received"] == 1 and journal.counts()["quarantined"] == 1


def test_duplicate_of_an_image_further_along_is_quarantined(config: Config, journal: Journal,
                                                            ingestor: Ingestor) -> None:
    data = make_image("PNG", seed=8)
    first = ingestor.ingest(drop(config, "a.png", data))
    assert first.image_id is not None
    journal.advance([first.image_id], ImageState.UPLOADED)
    (config.work_folder / "spool" / f"{first.image_id}.png").unlink()  # as if retired later
    journal.advance([first.image_id], ImageState.RESULT_STORED)
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
    assert journal.counts()["quarantined"] == 5 and journal.counts()["received"] == 4


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


def test_quarantine_never_replaces_a_file_already_there(config: Config, ingestor: Ingestor) -> None:
    for attempt in range(5):  # retry in the rare case the clock's second ticks in between
        stamp = time.strftime("%Y%m%dT%H%M%S")
        kept = config.quarantine_folder / f"{stamp}-frame.jpg"
        kept.write_bytes(b"kept")
        outcome = ingestor.ingest(drop(config, "frame.jpg", f"bad {attempt}".encode()))
        if time.strftime("%Y%m%dT%H%M%S") == stamp:
            break
    assert kept.read_bytes() == b"kept"
    assert not kept.with_name(kept.name + ".reason.txt").exists()
    moved = [p for p in quarantined_files(config) if p.read_bytes() == f"bad {attempt}".encode()]
    assert len(moved) == 1 and moved[0].name.endswith("-frame.jpg")
    assert moved[0].with_name(moved[0].name + ".reason.txt").read_text().strip() == outcome.reason


@pytest.mark.parametrize("over_the_limit", [False, True])
def test_a_file_that_grew_after_its_size_was_taken_is_read_to_its_end_within_the_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, over_the_limit: bool) -> None:
    """A writer appending between our fstat and our read: fstat says 1,000 bytes fewer."""
    buffer = io.BytesIO()
    Image.frombytes("RGB", (128, 128), os.urandom(128 * 128 * 3)).save(buffer, "JPEG")
    data = buffer.getvalue()
    limit = len(data) - 500 if over_the_limit else len(data)  # the size fstat saw passes either way
    config = config_from_dict({"drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                               "aws": AWS, "ingest": {"max_bytes": limit}})
    config.drop_folder.mkdir()
    journal = Journal(config.journal_path)
    real_fstat = os.fstat
    monkeypatch.setattr(os, "fstat", lambda fd: os.stat_result(
        (*real_fstat(fd)[:6], real_fstat(fd).st_size - 1000, *real_fstat(fd)[7:])))
    try:
        outcome = Ingestor(config, journal).ingest(drop(config, "growing.jpg", data))
    finally:
        journal.close()
    if over_the_limit:
        assert outcome.reason == f"file is {limit + 1} bytes, over the {limit}-byte limit"
    else:
        assert outcome.image_id == hashlib.sha256(data).hexdigest(), "every byte, not the size fstat saw"


def test_oversize_file_is_quarantined_from_its_size_unread(config: Config, journal: Journal,
                                                           ingestor: Ingestor) -> None:
    """A sparse 64 GiB file: reading it would exhaust memory, so the stat must decide."""
    path = config.drop_folder / "huge.jpg"
    with open(path, "wb") as out:
        out.truncate(64 * 1024 ** 3)
    outcome = ingestor.ingest(path)
    assert outcome.reason == f"file is {64 * 1024 ** 3} bytes, over the {config.ingest.max_bytes}-byte limit"
    [moved] = quarantined_files(config)
    assert moved.name.endswith("-huge.jpg") and moved.stat().st_size == 64 * 1024 ** 3
    assert journal.counts()["quarantined"] == 1


def test_staging_is_empty_after_every_outcome(config: Config, ingestor: Ingestor) -> None:
    data = make_image("JPEG", seed=21)
    for name, content in (("ok.jpg", data), ("dup.jpg", data), ("bad.jpg", b"text")):
        ingestor.ingest(drop(config, name, content))
    assert list((config.work_folder / "staging").iterdir()) == []
