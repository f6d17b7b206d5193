"""ingest.py: a real Journal, real folders, real images; nothing is ever deleted."""
from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, UTC
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


def staged(config: Config, name: str, data: bytes) -> Path:
    """A file as a crash leaves it in staging: '{uuid hex}-{name in the drop folder}'."""
    path = config.work_folder / "staging" / f"{uuid.uuid4().hex}-{name}"
    path.write_bytes(data)
    return path


def test_recover_staging_ingests_what_a_crash_left(config: Config, journal: Journal, ingestor: Ingestor) -> None:
    good, bad = make_image("PNG", seed=30), b"not an image"
    left_good, left_bad = staged(config, "cam_7.png", good), staged(config, "cam_8.jpg", bad)
    partial = config.work_folder / "staging" / f".partial-{uuid.uuid4().hex}-cam_9.jpg"
    partial.write_bytes(b"half a cop")  # its source is still in the drop folder

    outcomes = ingestor.recover_staging()

    by_path = {o.path: o for o in outcomes}
    assert set(by_path) == {left_good, left_bad}
    sha = hashlib.sha256(good).hexdigest()
    assert by_path[left_good].image_id == sha
    record = journal.get(sha)
    assert record is not None and record.file_name == "cam_7.png"
    assert (config.work_folder / "spool" / f"{sha}.png").read_bytes() == good
    assert by_path[left_bad].reason is not None and "not a JPEG or PNG" in by_path[left_bad].reason
    [moved] = quarantined_files(config)
    assert moved.name.endswith("-cam_8.jpg") and moved.read_bytes() == bad
    assert list((config.work_folder / "staging").iterdir()) == []
    assert ingestor.recover_staging() == []


def test_recover_staging_completes_an_interrupted_move(config: Config, journal: Journal,
                                                       ingestor: Ingestor) -> None:
    """A crash between journal.add and the rename out of staging."""
    data = make_image("JPEG", seed=31)
    sha = hashlib.sha256(data).hexdigest()
    spooled = config.work_folder / "spool" / f"{sha}.jpg"
    assert journal.add({"image_id": sha, "file_name": "cam.jpg", "path": str(spooled), "ext": "jpg",
                        "size": len(data), "width": 160, "height": 120,
                        "captured_at": "2024-05-01T10:00:00.000Z"})
    staged(config, "cam.jpg", data)
    [outcome] = ingestor.recover_staging()
    assert outcome.accepted and outcome.image_id == sha
    assert spooled.read_bytes() == data
    assert quarantined_files(config) == []
    assert journal.counts()["validated"] == 1


def test_unreadable_file_is_left_in_the_drop_folder(config: Config, journal: Journal, ingestor: Ingestor,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    path = config.drop_folder / "loop.jpg"
    path.symlink_to(path)  # opening it fails with ELOOP, even for root
    with caplog.at_level(logging.ERROR, logger="batchsight.ingest"):
        outcome = ingestor.ingest(path)
    assert outcome.skipped and outcome.image_id is None and outcome.reason is None
    assert not outcome.accepted and outcome.path == path
    assert path.is_symlink()
    assert [getattr(r, "path", None) for r in caplog.records] == [str(path)]
    assert "Too many levels of symbolic links" in caplog.records[0].error, "the log says why"
    assert all_files(config.work_folder) == []
    assert journal.counts() == {**{s.value: 0 for s in ImageState}, "quarantined": 0}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_file_without_read_permission_is_left_in_the_drop_folder(config: Config, ingestor: Ingestor) -> None:
    path = drop(config, "locked.jpg", make_image("JPEG"))
    path.chmod(0)
    try:
        outcome = ingestor.ingest(path)
    finally:
        path.chmod(0o644)
    assert outcome.skipped and path.exists()
    assert all_files(config.work_folder) == []


def test_unreadable_file_in_staging_stays_there(config: Config, ingestor: Ingestor) -> None:
    folder = config.work_folder / "staging" / f"{uuid.uuid4().hex}-odd.jpg"
    folder.mkdir()  # opening it for reading fails
    [outcome] = ingestor.recover_staging()
    assert outcome.skipped and outcome.path == folder and folder.is_dir()
    assert quarantined_files(config) == []


def test_drop_folder_on_another_file_system(tmp_path: Path, journal: Journal) -> None:
    """Staging across file systems is a copy: whole, with the capture time, and the source removed."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system at /dev/shm")
    with tempfile.TemporaryDirectory(dir=shm) as other:
        config = config_from_dict({"drop_folder": other, "work_folder": str(tmp_path / "work"), "aws": AWS})
        data = make_image("JPEG", seed=40)
        path = drop(config, "far.jpg", data)
        os.utime(path, (1_714_557_600.5, 1_714_557_600.5))
        with pytest.raises(OSError) as caught:
            os.link(path, tmp_path / "probe")
        assert caught.value.errno == errno.EXDEV

        outcome = Ingestor(config, journal).ingest(path)

        assert outcome.accepted and not path.exists()
        record = journal.get(outcome.image_id or "")
        assert record is not None and record.captured_at == "2024-05-01T10:00:00.500Z"
        assert Path(record.path).read_bytes() == data
        assert list((config.work_folder / "staging").iterdir()) == []


# --- a group: one barrier, one transaction ------------------------------------------------------

def test_a_group_shares_one_sync_and_one_transaction(config: Config, journal: Journal, ingestor: Ingestor,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Outcomes come back in the order given, whatever each file's fate, duplicates inside the group included."""
    from batchsight import durable

    good = [make_image("JPEG", seed=n) for n in range(5)]
    names = ["g0.jpg", "bad.jpg", "g1.jpg", "same-as-g0.jpg", "g2.jpg", "g3.jpg", "g4.jpg"]
    datas = [good[0], b"no image", good[1], good[0], good[2], good[3], good[4]]
    paths = [drop(config, name, data) for name, data in zip(names, datas)]
    syncs: list[int] = []
    transactions: list[int] = []
    real_sync, real_add = durable.sync_files, Journal.add_many
    monkeypatch.setattr(durable, "sync_files", lambda files, folders: (syncs.append(len(list(files))),
                                                                       real_sync([], folders)))
    monkeypatch.setattr(Journal, "add_many", lambda self, records, **kw: (transactions.append(len(records)),
                                                                         real_add(self, records, **kw))[1])

    outcomes = ingestor.ingest_many(paths)

    assert [o.path for o in outcomes] == paths
    assert [o.accepted for o in outcomes] == [True, False, True, False, True, True, True]
    assert "not a JPEG or PNG" in (outcomes[1].reason or "")
    assert "duplicate" in (outcomes[3].reason or "")
    assert syncs == [6] and transactions == [6], "one barrier and one commit for the group"
    assert journal.counts()["received"] == 5 and journal.counts()["quarantined"] == 2
    assert list(config.drop_folder.iterdir()) == [] and list((config.work_folder / "staging").iterdir()) == []


def test_a_full_disk_mid_group_leaves_every_file_in_drop_or_staging(config: Config, journal: Journal,
                                                                    ingestor: Ingestor,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from batchsight import durable

    paths = [drop(config, f"p{n}.jpg", make_image("JPEG", seed=n)) for n in range(4)]
    real_rename = durable.rename

    def rename(source: Path, target: Path) -> bool:
        if source.name == "p2.jpg":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_rename(source, target)

    monkeypatch.setattr(durable, "rename", rename)
    with pytest.raises(OSError):
        ingestor.ingest_many(paths)
    assert sorted(p.name for p in config.drop_folder.iterdir()) == ["p2.jpg", "p3.jpg"]
    assert len(list((config.work_folder / "staging").iterdir())) == 2
    monkeypatch.setattr(durable, "rename", real_rename)
    assert all(o.accepted for o in ingestor.recover_staging() + ingestor.ingest_many(paths[2:]))
    assert journal.counts()["received"] == 4


def test_groups_journaled_before_a_full_disk_are_handed_out_before_it_raises(
        config: Config, journal: Journal, ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch) -> None:
    """The runtime hands each group to the verifier as it comes: a failure in a later group of a
    backlog must not keep the earlier, journaled images from being decoded until a restart."""
    from batchsight import durable
    from batchsight import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "GROUP", 2)
    paths = [drop(config, f"g{n}.jpg", make_image("JPEG", seed=40 + n)) for n in range(4)]
    real_rename = durable.rename

    def rename(source: Path, target: Path) -> bool:
        if source.name == "g3.jpg":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_rename(source, target)

    monkeypatch.setattr(durable, "rename", rename)
    handed_out = []
    with pytest.raises(OSError):
        for outcomes in ingestor.ingest_groups(paths):
            handed_out.append(outcomes)
    assert [[o.path.name for o in group if o.accepted] for group in handed_out] == [["g0.jpg", "g1.jpg"]]
    assert journal.counts()["received"] == 2


# --- files from subfolders of the drop folder ---------------------------------------------------------

def test_a_file_from_a_subfolder_keeps_its_path_below_the_drop_folder_as_its_name(
        config: Config, journal: Journal, ingestor: Ingestor) -> None:
    (config.drop_folder / "cam2" / "2026-11-24").mkdir(parents=True)
    good = drop(config, "cam2/2026-11-24/0001.jpg", make_image("JPEG", seed=71))
    odd = drop(config, "cam2/100%.jpg", make_image("JPEG", seed=72))  # '%' must survive the flat form
    bad = drop(config, "cam2/2026-11-24/0002.jpg", b"not an image")
    outcomes = {o.path: o for o in ingestor.ingest_many([good, odd, bad])}
    assert journal.get(outcomes[good].image_id).file_name == "cam2/2026-11-24/0001.jpg"
    assert journal.get(outcomes[odd].image_id).file_name == "cam2/100%.jpg"
    [moved] = quarantined_files(config)
    assert moved.parent == config.quarantine_folder and moved.name.endswith("-cam2%2F2026-11-24%2F0002.jpg")
    assert list((config.work_folder / "staging").iterdir()) == []
    assert sorted(p.name for p in (config.drop_folder / "cam2").rglob("*")) == ["2026-11-24"]  # folders stay


def test_a_crash_in_staging_gives_back_the_subfolder_name(config: Config, journal: Journal,
                                                         ingestor: Ingestor) -> None:
    data = make_image("PNG", seed=73)
    staged(config, "cam3%2F0007.png", data)  # as _ingest_group writes it, before a crash
    [outcome] = ingestor.recover_staging()
    assert journal.get(outcome.image_id).file_name == "cam3/0007.png"


def test_a_path_too_long_for_one_file_name_keeps_its_end(config: Config, journal: Journal,
                                                         ingestor: Ingestor) -> None:
    """Deep subfolders and long camera names: the staged and quarantined names must fit in
    255 bytes, so the start of the path goes, and the file's own name stays."""
    deep = config.drop_folder.joinpath(*[f"station-{n:02d}-camera-ä-{n:02d}" for n in range(10)])
    deep.mkdir(parents=True)
    good = deep / ("image-" + "x" * 40 + ".jpg")
    good.write_bytes(make_image("JPEG", seed=74))
    bad = deep / "broken-image.jpg"
    bad.write_bytes(b"not an image")
    outcomes = {o.path: o for o in ingestor.ingest_many([good, bad])}
    name = journal.get(outcomes[good].image_id).file_name
    assert name.startswith("…") and name.endswith(f"/{good.name}") and len(name.encode()) <= 213
    [moved] = quarantined_files(config)
    assert moved.name.endswith("%2Fbroken-image.jpg") and "…" in moved.name
    assert outcomes[bad].reason is not None and "not a JPEG or PNG" in outcomes[bad].reason
