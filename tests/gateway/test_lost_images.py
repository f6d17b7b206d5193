"""Re-sending only what the cloud confirms lost: the pipeline status and the source bucket in moto S3.

The status object is made by the pipeline's own code (batchsight_pipeline.pipeline_status, what
CheckWork writes) and checked against the contract; the journal is a real SQLite file.
"""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from dataclasses import replace
from typing import Any

import boto3
import jsonschema
import pytest
from moto import mock_aws

from batchsight.cloud_link import source_key
from batchsight_pipeline import pipeline_status
from batchsight_pipeline.overload import Load
from batchsight.config import Config, config_from_dict
from batchsight.housekeeping import Housekeeper
from batchsight.journal import ImageState, Journal
from batchsight.lost_images import STATUS_KEY, LossCheck
from tests.gateway.journal_support import row
from tests.support import load_schema

TIMEOUT = 60


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="source")
        client.create_bucket(Bucket="final")
        yield client


def _config(tmp_path: Path) -> Config:
    return config_from_dict({
        "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
        "results": {"timeout_seconds": TIMEOUT},
        "aws": {"source_bucket": "source", "final_bucket": "final", "queue_url": "q", "state_machine_arn": "a"}})


def _submitted(journal: Journal) -> str:
    image_id = f"{1:064x}"
    journal.add({"image_id": image_id, "file_name": "1.jpg", "path": "/x/1.jpg", "ext": "jpg", "size": 10,
                 "width": 64, "height": 64, "captured_at": "2026-12-05T01:00:00.000Z"})
    journal.cut_batch("b1", max_images=10)
    journal.advance([image_id], ImageState.SUBMITTED)
    return image_id


def _status(s3: Any, *, queue_empty_at: float | None, backpressure: bool = False) -> None:
    """The status as the pipeline's CheckWork writes it (its own code), checked against the contract."""
    load = Load(checked_at=time.time(), visible=5000 if backpressure else 0, backlog=5000 if backpressure else 0,
                units=2, saturated=backpressure, state="saturated" if backpressure else "ok")
    status = pipeline_status.document(
        load, now=time.time(), max_units=2, unit_tps=10, in_flight=0, execution="e",
        queue_empty_at=pipeline_status.iso(queue_empty_at) if queue_empty_at else "")
    jsonschema.validate(status, load_schema("pipeline_status"))
    s3.put_object(Bucket="final", Key=STATUS_KEY, Body=json.dumps(status).encode())


def _keeper(tmp_path: Path, s3: Any) -> tuple[Housekeeper, Journal, Config]:
    config = _config(tmp_path)
    journal = Journal(config.journal_path)
    return Housekeeper(config, journal, losses=LossCheck(config, s3=s3)), journal, config


def test_an_image_still_queued_behind_a_backlog_is_not_re_sent_and_backpressure_is_said(
        tmp_path: Path, s3: Any) -> None:
    keeper, journal, config = _keeper(tmp_path, s3)
    image_id = _submitted(journal)
    s3.put_object(Bucket="source", Key=source_key(config, row(journal, image_id)), Body=b"x")
    _status(s3, queue_empty_at=time.time() - 3600, backpressure=True)  # empty before it was submitted
    alarm = keeper.resubmit_overdue(time.time() + TIMEOUT + 1)
    assert alarm and "saturated" in alarm and "not re-sent" in alarm
    assert row(journal, image_id).state is ImageState.SUBMITTED


def test_an_image_whose_upload_is_still_there_is_held_by_the_cloud(tmp_path: Path, s3: Any) -> None:
    keeper, journal, config = _keeper(tmp_path, s3)
    image_id = _submitted(journal)
    s3.put_object(Bucket="source", Key=source_key(config, row(journal, image_id)), Body=b"x")
    _status(s3, queue_empty_at=time.time() + 30)  # the queue emptied after the submission
    assert "not re-sent" in (keeper.resubmit_overdue(time.time() + TIMEOUT + 1) or "")
    assert row(journal, image_id).state is ImageState.SUBMITTED


def test_an_image_with_no_upload_and_no_queued_message_is_re_sent(tmp_path: Path, s3: Any) -> None:
    keeper, journal, _config_ = _keeper(tmp_path, s3)
    image_id = _submitted(journal)
    _status(s3, queue_empty_at=time.time() + 30)
    alarm = keeper.resubmit_overdue(time.time() + TIMEOUT + 1)
    assert alarm and "lost" in alarm and "re-submitted" in alarm
    record = row(journal, image_id)
    assert record.state is ImageState.VALIDATED and record.batch_id is None  # into the next batch


def test_no_upload_but_submitted_after_the_queue_was_last_empty_is_still_queued(
        tmp_path: Path, s3: Any) -> None:
    keeper, journal, _config_ = _keeper(tmp_path, s3)
    image_id = _submitted(journal)
    _status(s3, queue_empty_at=time.time() - 3600)
    keeper.resubmit_overdue(time.time() + TIMEOUT + 1)
    assert row(journal, image_id).state is ImageState.SUBMITTED


def test_the_gateway_reads_the_key_the_pipeline_writes() -> None:
    assert STATUS_KEY == pipeline_status.STATUS_KEY


def test_uploads_to_the_final_bucket_are_looked_for_at_their_place_there(tmp_path: Path, s3: Any) -> None:
    """ImageUpload=final-bucket: the upload lies next to its result and stays; only one that is
    not there is lost."""
    config = replace(_config(tmp_path), aws=replace(_config(tmp_path).aws, source_bucket="final"))
    journal = Journal(config.journal_path)
    held, gone = _submitted(journal), f"{2:064x}"
    journal.add({"image_id": gone, "file_name": "2.jpg", "path": "/x/2.jpg", "ext": "jpg", "size": 10,
                 "width": 64, "height": 64, "captured_at": "2026-12-05T01:00:00.000Z"})
    journal.cut_batch("b2", max_images=10)
    journal.advance([gone], ImageState.SUBMITTED)
    key = source_key(config, row(journal, held))
    assert key == f"results/{config.site}/{config.line}/{config.device}/2026/12/05/{held}.jpg"
    s3.put_object(Bucket="final", Key=key, Body=b"x")
    assert LossCheck(config, s3=s3).lost([row(journal, held), row(journal, gone)]) == [gone]
