"""Part context on real files: the part id and lot from the file name or a sidecar JSON file,
journaled with the image by the real ingest, and carried into the MQTT payload, the SQS message
and the S3 metadata; an older journal file gains the two columns."""
from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from batchsight import alerts
from batchsight.cloud_link import CloudLink, part_metadata
from batchsight.config import Config, config_from_dict
from batchsight.ingest import Ingestor
from batchsight.journal import Journal
from batchsight.part_context import ORPHAN_SECONDS, PartJournal
from tests.gateway.ingest_support import AWS, drop, make_image

PATTERN = r"(?P<lot>LOT\d+)_(?P<part_id>P\d+)"


def part_config(tmp: Path, **part: Any) -> Config:
    config = config_from_dict({"drop_folder": str(tmp / "drop"), "work_folder": str(tmp / "work"), "aws": AWS,
                               "part": part})
    config.drop_folder.mkdir(parents=True, exist_ok=True)
    return config


def ingest(config: Config, paths: list[Path]) -> tuple[PartJournal, list[Any]]:
    journal = PartJournal(config.journal_path, config)
    outcomes = Ingestor(config, journal).ingest_many(paths)
    return journal, outcomes


def test_the_file_name_pattern_gives_part_and_lot_to_every_payload(tmp_path: Path) -> None:
    config = part_config(tmp_path, file_pattern=PATTERN)
    journal, (outcome,) = ingest(config, [drop(config, "LOT42_P000123 ä.jpg", make_image())])
    image = journal.get(str(outcome.image_id))
    assert image is not None and (image.part_id, image.lot) == ("P000123", "LOT42")
    payload = alerts.result_payload(config, image)
    assert (payload["part_id"], payload["lot"]) == ("P000123", "LOT42")
    message = CloudLink(config, journal, s3=None, sqs=None, sfn=None).message("b1", image)
    assert (message["part_id"], message["lot"]) == ("P000123", "LOT42")
    assert {k: unquote(v) for k, v in part_metadata(image).items()} == {"part-id": "P000123", "lot": "LOT42"}
    journal.close()


def test_an_image_without_part_context_says_nothing_of_it(tmp_path: Path) -> None:
    config = part_config(tmp_path, file_pattern=PATTERN)
    journal, (outcome,) = ingest(config, [drop(config, "cam-1.jpg", make_image())])
    image = journal.get(str(outcome.image_id))
    assert image is not None and (image.part_id, image.lot) == (None, None)
    assert (alerts.result_payload(config, image)["part_id"], part_metadata(image)) == ("", {})
    journal.close()


def test_a_sidecar_wins_over_the_name_is_never_ingested_and_goes_with_its_image(tmp_path: Path) -> None:
    config = part_config(tmp_path, file_pattern=PATTERN, sidecar=True)
    sidecar = config.drop_folder / "LOT42_P000001.json"
    sidecar.write_text(json.dumps({"part_id": "P999", "lot": None, "operator": "ann"}))
    image = drop(config, "LOT42_P000001.jpg", make_image())
    journal, outcomes = ingest(config, [sidecar, image])
    assert not outcomes[0].accepted and outcomes[0].reason is None, "the sidecar is not an image to quarantine"
    assert outcomes[0].skipped, "left in place: the watcher offers it again, as a retry"
    record = journal.get(str(outcomes[1].image_id))
    assert record is not None and (record.part_id, record.lot) == ("P999", "LOT42")
    assert not sidecar.exists(), "read with its image, then deleted"
    assert not list(config.quarantine_folder.iterdir())
    journal.close()


def test_a_sidecar_named_after_the_whole_file_name_counts_too(tmp_path: Path) -> None:
    config = part_config(tmp_path, sidecar=True)
    (config.drop_folder / "shot.png.json").write_text('{"part_id": "A-1", "lot": "7"}')
    journal, (outcome,) = ingest(config, [drop(config, "shot.png", make_image("PNG"))])
    record = journal.get(str(outcome.image_id))
    assert record is not None and (record.part_id, record.lot) == ("A-1", "7")
    journal.close()


def test_a_broken_sidecar_is_said_once_and_the_image_goes_on(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    config = part_config(tmp_path, sidecar=True)
    (config.drop_folder / "p.json").write_text("{not json")
    caplog.set_level(logging.WARNING)
    journal, (outcome,) = ingest(config, [drop(config, "p.jpg", make_image())])
    record = journal.get(str(outcome.image_id))
    assert record is not None and record.part_id is None
    assert [r.getMessage() for r in caplog.records] == ["part sidecar unreadable; the image goes on without it"]
    journal.close()


def test_an_orphan_sidecar_is_deleted_after_an_hour(tmp_path: Path) -> None:
    config = part_config(tmp_path, sidecar=True)
    orphan, fresh = config.drop_folder / "gone.json", config.drop_folder / "soon.json"
    for path in (orphan, fresh):
        path.write_text("{}")
    old = time.time() - ORPHAN_SECONDS - 5
    os.utime(orphan, (old, old))
    journal, _ = ingest(config, [orphan, fresh])
    assert not orphan.exists() and fresh.exists()
    journal.close()


def test_an_older_journal_file_gains_the_part_columns(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    with sqlite3.connect(path) as db:  # as the version before part context wrote it
        db.execute("ALTER TABLE images DROP COLUMN part_id")
        db.execute("ALTER TABLE images DROP COLUMN lot")
        db.execute("INSERT INTO images (image_id, file_name, path, ext, size, width, height, captured_at, seen_at,"
                   " state, updated_at) VALUES ('a', 'old.jpg', '/a.jpg', 'jpg', 1, 64, 64, 'x', 0, 'received', 0)")
    db.close()
    journal = Journal(path)
    record = journal.get("a")
    assert record is not None and record.file_name == "old.jpg" and (record.part_id, record.lot) == (None, None)
    journal.close()
