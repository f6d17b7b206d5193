"""Operator feedback on images judged at the edge only: the alert is held after its result, an
answer keeps the file until it is sent, and the upload puts the image where a cloud-judged one
lies with its label beside it, where `batchsight dataset build` finds it. S3 is moto's, here."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchsight.alerter import Alerter
from batchsight.config import Config, config_from_dict
from batchsight.feedback import FeedbackStore
from batchsight.housekeeping import release_held
from batchsight.journal import ImageState, Journal, Route
from batchsight_tools.dataset.sources import feedback as dataset_feedback
from tests.gateway.test_outbox import FakeBroker

FINAL = "final-bucket"
DAY = "results/plant1/line1/gateway1/2026/11/23"


class Gateway:
    def __init__(self, tmp: Path, s3: Any, **retention: Any) -> None:
        self.config: Config = config_from_dict({
            "drop_folder": str(tmp / "drop"), "work_folder": str(tmp / "work"),
            "aws": {"source_bucket": "src", "final_bucket": FINAL, "queue_url": "q", "state_machine_arn": "a"},
            "retention": retention})
        self.journal = Journal(self.config.journal_path)
        self.alerter = Alerter(self.config, self.journal, FakeBroker())
        self.feedback = FeedbackStore(self.config, self.journal, s3=s3)
        self.spool = self.config.work_folder / "spool"
        self.spool.mkdir(parents=True)

    def judged_at_edge(self, n: int, *, anomalous: bool) -> str:
        """An image the local detector judged (model castings 3), its result stored."""
        data = f"jpeg bytes of part {n}".encode()
        image_id = f"{n:02x}" * 32
        path = self.spool / f"{image_id}.jpg"
        path.write_bytes(data)
        self.journal.add({"image_id": image_id, "file_name": f"part-{n}.jpg", "path": str(path), "ext": "jpg",
                          "size": len(data), "width": 64, "height": 64, "captured_at": "2026-11-23T10:00:00.000Z",
                          "route": None})
        document = {"v": 1, "image_id": image_id, "judged_by": "edge", "processed_at": "2026-11-23T10:00:01.000Z",
                    "model": {"name": "castings", "version": "3"},
                    "result": {"IsAnomalous": anomalous, "Confidence": 0.9}}
        self.journal.advance([image_id], ImageState.RESULT_STORED, route=Route.EDGE.value, is_anomalous=int(anomalous),
                             confidence=0.9, result_json=json.dumps(document))
        return image_id

    def close(self) -> None:
        self.feedback.close()
        self.journal.close()


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=FINAL)
        yield client


@pytest.fixture
def gateway(tmp_path: Path, s3: Any) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path, s3)
    yield gateway
    gateway.close()


def _answer(image_id: str, verdict: str = "false_alarm", **fields: str) -> bytes:
    return json.dumps({"v": 1, "image_id": image_id, "verdict": verdict, "operator": "op-7", **fields}).encode()


def test_an_answered_edge_alert_reaches_the_final_bucket_with_its_label(gateway: Gateway, s3: Any) -> None:
    alert = gateway.judged_at_edge(1, anomalous=True)
    gateway.judged_at_edge(2, anomalous=False)
    assert gateway.alerter.hand_off() == 2
    held = gateway.config.held_folder
    assert [p.name for p in held.iterdir()] == [f"{alert}.jpg"], "the alert is held, the normal image deleted"
    assert list(gateway.spool.iterdir()) == []
    assert gateway.feedback.handle(_answer(alert, label="dust on lens"))["ok"] is True
    release_held(gateway.config, older_than=float("inf"))  # its hours are over before the cloud is reachable
    assert list(held.iterdir()) == []
    assert gateway.feedback.upload_pending() == 1
    image = s3.get_object(Bucket=FINAL, Key=f"{DAY}/{alert}.jpg")
    assert image["Body"].read() == b"jpeg bytes of part 1" and image["ContentType"] == "image/jpeg"
    assert image["Metadata"]["judged-by"] == "edge" and image["Metadata"]["model-version"] == "3"
    line = json.loads(s3.get_object(Bucket=FINAL, Key=f"{DAY}/{alert}.label.manifest")["Body"].read())
    assert line["source-ref"] == f"s3://{FINAL}/{DAY}/{alert}.jpg"
    assert line["anomaly-label"] == 0 and line["anomaly-label-metadata"]["operator-label"] == "dust on lens"
    assert list(gateway.config.feedback_folder.iterdir()) == [], "sent: nothing kept for it any more"
    assert [k["Key"] for k in s3.list_objects_v2(Bucket=FINAL)["Contents"]] == [
        f"{DAY}/{alert}.jpg", f"{DAY}/{alert}.label.manifest"], "one PUT of the image, only for the answered one"
    found = dataset_feedback(s3, FINAL, "plant1", "line1")
    assert [(label.image_id, label.anomalous) for label in found.labels] == [(alert, False)]
    assert found.without_image == 0
    # the operator changes the answer: the image is in S3 already, the label is replaced
    assert gateway.feedback.handle(_answer(alert, "confirmed"))["ok"] is True
    assert gateway.feedback.upload_pending() == 1
    line = json.loads(s3.get_object(Bucket=FINAL, Key=f"{DAY}/{alert}.label.manifest")["Body"].read())
    assert line["anomaly-label"] == 1


def test_an_answer_before_the_hand_off_keeps_the_image_too(gateway: Gateway, s3: Any) -> None:
    alert = gateway.judged_at_edge(3, anomalous=True)
    assert gateway.feedback.handle(_answer(alert, "confirmed"))["ok"] is True  # still in the spool
    gateway.alerter.hand_off()
    release_held(gateway.config, older_than=float("inf"))
    assert gateway.feedback.upload_pending() == 1
    assert s3.get_object(Bucket=FINAL, Key=f"{DAY}/{alert}.jpg")["Body"].read() == b"jpeg bytes of part 3"


def test_an_answer_for_an_edge_image_no_longer_kept_says_why(gateway: Gateway, s3: Any) -> None:
    normal = gateway.judged_at_edge(4, anomalous=False)
    gateway.alerter.hand_off()
    reply = gateway.feedback.handle(_answer(normal, "confirmed"))
    assert reply["ok"] is False and "judged at the edge and its file is no longer on this gateway" in reply["error"]
    assert "retention.feedback_hours" in reply["error"]
    assert gateway.feedback.upload_pending() == 0 and "Contents" not in s3.list_objects_v2(Bucket=FINAL)


def test_without_a_hold_edge_alerts_are_deleted_and_the_archive_keeps_everything(tmp_path: Path, s3: Any) -> None:
    no_hold = Gateway(tmp_path / "a", s3, feedback_hours=0)
    try:
        no_hold.judged_at_edge(5, anomalous=True)
        no_hold.alerter.hand_off()
        assert not no_hold.config.held_folder.exists()
    finally:
        no_hold.close()
    archive = Gateway(tmp_path / "b", s3, after_result="archive")
    try:
        normal = archive.judged_at_edge(6, anomalous=False)
        archive.alerter.hand_off()
        assert archive.feedback.handle(_answer(normal, "false_alarm"))["ok"] is True, "found in the archive"
        assert archive.feedback.upload_pending() == 1
        assert s3.head_object(Bucket=FINAL, Key=f"{DAY}/{normal}.label.manifest")
    finally:
        archive.close()


def test_held_alerts_go_after_their_hours(gateway: Gateway) -> None:
    import os
    import time

    alert = gateway.judged_at_edge(7, anomalous=True)
    gateway.alerter.hand_off()
    held = gateway.config.held_folder / f"{alert}.jpg"
    assert release_held(gateway.config, older_than=time.time() - 24 * 3600) == 0
    os.utime(held, (time.time() - 25 * 3600,) * 2)
    assert release_held(gateway.config, older_than=time.time() - 24 * 3600) == 1 and not held.exists()
