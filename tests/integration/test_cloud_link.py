"""cloud_link.py's submit step against moto over HTTP, on a real journal file: uploads recorded
a group per transaction and only after S3 has them, an upload failure stops the batch without
losing what finished, and a damaged spool file is set aside instead of blocking its batch.

Each test gets a bucket, a queue and a one-state machine of its own in the session's moto
server, so no pipeline runs. Failures are injected into the real boto3 client's HTTP send
(botocore's ``before-send`` event), at the network boundary.
"""
from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from batchsight.cloud_link import RECORD_UPLOADS, CloudLink
from batchsight.config import Config, config_from_dict
from batchsight.journal import ImageState, Journal
from tests.support import CloudFixture

pytestmark = pytest.mark.integration
PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


class Aws:
    """A bucket, a queue and a state machine of this test's own, and the clients to reach them."""

    def __init__(self, cloud: CloudFixture) -> None:
        name = f"link-{uuid.uuid4().hex[:10]}"
        self.s3, self.sqs, self.sfn = cloud.client("s3"), cloud.client("sqs"), cloud.client("stepfunctions")
        self.bucket = name
        self.s3.create_bucket(Bucket=name)
        self.queue_url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        self.machine_arn = self.sfn.create_state_machine(
            name=name, definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/sfn")["stateMachineArn"]
        self.put_attempts: list[str] = []

    def refuse_puts_of(self, image_ids: set[str]) -> None:
        """Every PutObject of these images fails in the network, as a cable pulled mid-batch would."""
        def maybe_refuse(request: Any, **_: Any) -> None:
            self.put_attempts.append(request.url)
            if any(image_id in request.url for image_id in image_ids):
                raise ConnectionError("network is unreachable")
        self.s3.meta.events.register("before-send.s3.PutObject", maybe_refuse, unique_id="refuse")

    def stored(self) -> set[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        return {o["Key"].rsplit("/", 1)[1][:64] for o in listed}

    def messages(self) -> list[dict[str, Any]]:
        bodies = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", []):
            bodies += [json.loads(m["Body"]) for m in batch]
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)])
        return bodies


@pytest.fixture
def aws(local_cloud_session: CloudFixture) -> Aws:
    return Aws(local_cloud_session)


@pytest.fixture
def config(tmp_path: Path, aws: Aws) -> Config:
    return config_from_dict({"drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
                             "aws": {"source_bucket": aws.bucket, "final_bucket": aws.bucket,
                                     "queue_url": aws.queue_url, "state_machine_arn": aws.machine_arn}})


def _link(config: Config, journal: Journal, aws: Aws, **options: Any) -> CloudLink:
    return CloudLink(config, journal, s3=aws.s3, sqs=aws.sqs, sfn=aws.sfn, **options)


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


def test_submit_records_every_upload_in_groups(config: Config, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    journal, batch_id, ids = _journal_batch(config, 2 * RECORD_UPLOADS + 3)
    uploaded_groups: list[int] = []
    advance = journal.advance

    def counting_advance(image_ids: list[str], to: ImageState, **fields: Any) -> None:
        if to is ImageState.UPLOADED:
            uploaded_groups.append(len(image_ids))
        advance(image_ids, to, **fields)

    monkeypatch.setattr(journal, "advance", counting_advance)  # counts the calls, the real one runs
    _link(config, journal, aws).submit(batch_id)
    assert set(_states(journal, batch_id).values()) == {ImageState.SUBMITTED}
    assert aws.stored() == set(ids) and sorted(m["image_id"] for m in aws.messages()) == sorted(ids)
    assert uploaded_groups == [RECORD_UPLOADS, RECORD_UPLOADS, 3], "one transaction per group, not per image"


def test_a_failed_upload_records_what_finished_and_sends_nothing(config: Config, aws: Aws) -> None:
    journal, batch_id, ids = _journal_batch(config, 3 * RECORD_UPLOADS)
    aws.refuse_puts_of({ids[4]})
    link = _link(config, journal, aws, upload_concurrency=2)
    with pytest.raises(ConnectionError):
        link.submit(batch_id)
    states = _states(journal, batch_id)
    uploaded = {i for i, s in states.items() if s is ImageState.UPLOADED}
    assert uploaded == aws.stored(), "recorded exactly the uploads that succeeded"
    assert states[ids[4]] is ImageState.VALIDATED
    assert len(aws.stored()) < len(ids) - 1, "uploads not started yet were cancelled"
    assert not aws.messages(), "no message before the batch's uploads are through"

    aws.s3.meta.events.unregister("before-send.s3.PutObject", unique_id="refuse")  # the link is back
    link.submit(batch_id)
    assert set(_states(journal, batch_id).values()) == {ImageState.SUBMITTED}
    bodies = [m["image_id"] for m in aws.messages()]
    assert aws.stored() == set(ids) and sorted(bodies) == sorted(ids), "each image enqueued once"


def test_a_damaged_spool_file_is_set_aside_and_its_batch_goes_on(config: Config, aws: Aws) -> None:
    journal, batch_id, ids = _journal_batch(config, 5)
    changed, gone = (Path(journal.get(i).path) for i in ids[:2])
    changed.write_bytes(changed.read_bytes()[:-10])  # the disk lost its tail
    gone.unlink()
    _link(config, journal, aws).submit(batch_id)
    assert set(_states(journal, batch_id)) == set(ids[2:])
    assert set(_states(journal, batch_id).values()) == {ImageState.SUBMITTED}
    assert aws.stored() == set(ids[2:]), "never other bytes under an image's key"
    assert journal.get(ids[0]) is None and journal.get(ids[1]) is None
    quarantine = config.quarantine_folder
    reasons = [p.read_text() for p in quarantine.glob("*.reason.txt")]
    assert len(reasons) == 1 and "bytes changed on disk" in reasons[0]
    assert journal.counts()["quarantined"] == 2
    execution = aws.sfn.list_executions(stateMachineArn=aws.machine_arn)["executions"][0]
    started = json.loads(aws.sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started["image_count"] == 3
    journal.close()
