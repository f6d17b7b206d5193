"""cloud_link.py's upload step on a real Journal: uploads recorded a group per transaction,
only after they succeeded, and an upload failure stops the batch without losing what finished."""
from __future__ import annotations

import hashlib
import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchsight.cloud_link import RECORD_UPLOADS, CloudLink
from batchsight.config import Config, config_from_dict
from batchsight.journal import ImageState, Journal

AWS = {"source_bucket": "src", "final_bucket": "final", "queue_url": "http://127.0.0.1/q",
       "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm"}


class FakeS3:
    """Accepts puts after a short network delay, except for the images it was told to refuse."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.refuse = refuse or set()
        self.stored: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def put_object(self, *, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        time.sleep(0.02)  # long enough that uploads queued behind a failure are still waiting
        if any(Key.endswith(f"{image_id}.jpg") for image_id in self.refuse):
            raise ConnectionError("network is unreachable")
        with self._lock:
            self.stored[Key] = Body
        return {}


class FakeSqs:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    def send_message_batch(self, *, Entries: list[dict[str, str]], **_: Any) -> dict[str, Any]:
        self.bodies += [e["MessageBody"] for e in Entries]
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


class FakeSfn:
    def start_execution(self, *, name: str, **_: Any) -> dict[str, Any]:
        return {"executionArn": f"arn:aws:states:us-east-1:123456789012:execution:sm:{name}"}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return config_from_dict({"drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                             "aws": AWS})


def _journal_batch(config: Config, count: int) -> tuple[Journal, str, list[str]]:
    """``count`` distinct JPEGs in the spool, journaled and cut into one batch."""
    journal = Journal(config.journal_path)
    spool = config.work_folder / "spool"
    spool.mkdir(parents=True)
    ids = []
    for n in range(count):
        buffer = io.BytesIO()
        Image.new("L", (64, 64), n % 256).save(buffer, "JPEG")
        data = buffer.getvalue() + n.to_bytes(4, "big")  # distinct bytes, same picture
        image_id = hashlib.sha256(data).hexdigest()
        (spool / f"{image_id}.jpg").write_bytes(data)
        journal.add({"image_id": image_id, "file_name": f"f{n}.jpg", "path": str(spool / f"{image_id}.jpg"),
                     "ext": "jpg", "size": len(data), "width": 64, "height": 64,
                     "captured_at": "2026-11-23T10:00:00.000Z"})
        ids.append(image_id)
    journal.cut_batch("b1", max_images=count)
    return journal, "b1", ids


def _states(journal: Journal, batch_id: str) -> dict[str, ImageState]:
    return {i.image_id: i.state for i in journal.batch_images(batch_id)}


def test_submit_records_every_upload_in_groups(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    journal, batch_id, ids = _journal_batch(config, 2 * RECORD_UPLOADS + 3)
    uploaded_groups: list[int] = []
    advance = journal.advance

    def counting_advance(image_ids: list[str], to: ImageState, **fields: Any) -> None:
        if to is ImageState.UPLOADED:
            uploaded_groups.append(len(image_ids))
        advance(image_ids, to, **fields)

    monkeypatch.setattr(journal, "advance", counting_advance)
    s3, sqs = FakeS3(), FakeSqs()
    CloudLink(config, journal, s3=s3, sqs=sqs, sfn=FakeSfn()).submit(batch_id)
    assert set(_states(journal, batch_id).values()) == {ImageState.SUBMITTED}
    assert len(s3.stored) == len(ids) and len(sqs.bodies) == len(ids)
    assert uploaded_groups == [RECORD_UPLOADS, RECORD_UPLOADS, 3], "one transaction per group, not per image"


def test_a_failed_upload_records_what_finished_and_sends_nothing(config: Config) -> None:
    journal, batch_id, ids = _journal_batch(config, 3 * RECORD_UPLOADS)
    s3, sqs = FakeS3(refuse={ids[4]}), FakeSqs()
    link = CloudLink(config, journal, s3=s3, sqs=sqs, sfn=FakeSfn(), upload_concurrency=2)
    with pytest.raises(ConnectionError):
        link.submit(batch_id)
    states = _states(journal, batch_id)
    uploaded = {i for i, s in states.items() if s is ImageState.UPLOADED}
    assert uploaded == {k.rsplit("/", 1)[1][:64] for k in s3.stored}, \
        "recorded exactly the uploads that succeeded"
    assert states[ids[4]] is ImageState.VALIDATED
    assert len(s3.stored) < len(ids) - 1, "uploads not started yet were cancelled"
    assert not sqs.bodies, "no message before the batch's uploads are through"

    s3.refuse.clear()  # the link is back: the next attempt finishes the batch
    link.submit(batch_id)
    assert set(_states(journal, batch_id).values()) == {ImageState.SUBMITTED}
    assert len(s3.stored) == len(ids) and sorted(sqs.bodies) == sorted(set(sqs.bodies))
