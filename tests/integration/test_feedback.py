"""Operator feedback: validated, recorded in the journal file, uploaded as a manifest line."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchsight.config import config_from_dict
from batchsight.feedback import FeedbackStore
from batchsight.journal import ImageState, Journal
from tests.support import CloudFixture

pytestmark = pytest.mark.integration
IMAGE_ID = "ab" * 32


@pytest.fixture
def store(local_cloud: CloudFixture, tmp_path: Path):
    config = config_from_dict({
        "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
        "aws": {"source_bucket": local_cloud.outputs.source_bucket, "final_bucket": local_cloud.outputs.final_bucket,
                "queue_url": "q", "state_machine_arn": "a"}})
    journal = Journal(config.journal_path)
    journal.add({"image_id": IMAGE_ID, "file_name": "p.jpg", "path": "/x", "ext": "jpg", "size": 1,
                 "width": 64, "height": 64, "captured_at": "2026-11-23T10:00:00.000Z"})
    document = {"v": 1, "image_id": IMAGE_ID, "result": {"IsAnomalous": True, "Confidence": 0.9},
                "image": {"key": f"results/plant1/line1/gateway1/2026/11/23/{IMAGE_ID}.jpg"}}
    journal.advance([IMAGE_ID], ImageState.RESULT_STORED, is_anomalous=1, confidence=0.9,
                    result_json=json.dumps(document))
    feedback = FeedbackStore(config, journal, s3=local_cloud.client("s3"))
    yield feedback, local_cloud
    feedback.close()
    journal.close()


def _answer(**fields: object) -> bytes:
    return json.dumps({"v": 1, "image_id": IMAGE_ID, "verdict": "false_alarm", "operator": "op-7", **fields}).encode()


def test_false_alarm_becomes_a_normal_label_next_to_the_result(store) -> None:
    feedback, cloud = store
    assert feedback.handle(_answer(label="dust on lens"))["ok"] is True
    assert feedback.upload_pending() == 1
    key = f"results/plant1/line1/gateway1/2026/11/23/{IMAGE_ID}.label.manifest"
    body = cloud.client("s3").get_object(Bucket=cloud.outputs.final_bucket, Key=key)["Body"].read()
    line = json.loads(body)
    assert line["source-ref"] == f"s3://{cloud.outputs.final_bucket}/results/plant1/line1/gateway1/2026/11/23/{IMAGE_ID}.jpg"
    assert line["anomaly-label"] == 0 and line["anomaly-label-metadata"]["class-name"] == "normal"
    assert line["anomaly-label-metadata"]["operator-label"] == "dust on lens"
    assert feedback.upload_pending() == 0, "uploaded once"


@pytest.mark.parametrize("raw, error", [
    (b"{not json", "not JSON"),
    (json.dumps({"v": 1, "image_id": "cd" * 32, "verdict": "confirmed"}).encode(), "no result"),
    (json.dumps({"v": 1, "image_id": IMAGE_ID, "verdict": "maybe"}).encode(), "verdict"),
    (b"x" * 10_000, "limit"),
    (json.dumps({"v": 1, "image_id": IMAGE_ID, "verdict": "confirmed", "operator": "o" * 500}).encode(), "operator"),
])
def test_bad_feedback_gets_an_error_reply(store, raw: bytes, error: str) -> None:
    feedback, _ = store
    reply = feedback.handle(raw)
    assert reply["ok"] is False and error in reply["error"]
    assert feedback.upload_pending() == 0
