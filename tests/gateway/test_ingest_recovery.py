"""ingest.py after a crash and around files it cannot read: what staging holds at the start is
ingested, an unreadable file is left where it is, a copy across file systems is whole."""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import tempfile
import uuid
from pathlib import Path

import pytest

from batchsight.config import Config, config_from_dict
from batchsight.ingest import Ingestor
from batchsight.journal import ImageState, Journal
from tests.gateway.ingest_support import AWS, all_files, drop, make_image, quarantined_files, staged


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
    assert "not a JPEG or PNG" in (by_path[left_bad].reason or "")
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
    assert "Too many levels of symbolic links" in vars(caplog.records[0])["error"], "the log says why"
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
