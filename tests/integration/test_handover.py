"""Hand-over before the history quota: the real state machine under moto, the threshold lowered.

A draining execution passes the model lock and the hosted model to a successor it starts itself
(continue-as-new) once its history passes HANDOVER_EVENTS (HandOverEvents). Here the threshold is
lowered to its least (about one drain round) and the drain slowed (DetectTps 2, a 37 s drain
timeout: a few images per worker per round), so one batch takes a chain of executions (two or
more, by the machine's pace; three in most runs here: the first drains one round, about 16 of the
50 images, each successor two).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsight_tools.synth import generate
from tests.support import CloudFixture

pytestmark = pytest.mark.integration
DRAIN_FUNCTION = "batchsight-DrainFunction"
IMAGES = 50  # a round drains 16 here (2 workers, DetectTps 2, 40 s): the first execution hands over after one


@pytest.fixture
def short_histories(local_cloud: CloudFixture) -> Iterator[CloudFixture]:
    """The stack updated for this test (HandOverEvents 50, its least: about one drain round here; a
    slow drain), and put back after."""
    lam = local_cloud.client("lambda")
    timeout = lam.get_function_configuration(FunctionName=DRAIN_FUNCTION)["Timeout"]
    previous = local_cloud.cloud.update_environment({"HANDOVER_EVENTS": "50", "DETECT_TPS": "2"})
    lam.update_function_configuration(FunctionName=DRAIN_FUNCTION, Timeout=40)  # one image's 35 s, and a little
    try:
        yield local_cloud
    finally:
        local_cloud.wait_for_executions(timeout=300)
        local_cloud.cloud.update_environment(previous)
        lam.update_function_configuration(FunctionName=DRAIN_FUNCTION, Timeout=timeout)


def _queue(cloud: CloudFixture, path: Path) -> str:
    data = path.read_bytes()
    image_id = hashlib.sha256(data).hexdigest()
    key = f"incoming/s1/l1/d1/2026/12/05/{image_id}{path.suffix}"
    cloud.client("s3").put_object(Bucket=cloud.outputs.source_bucket, Key=key, Body=data)
    message = {"v": 1, "bucket": cloud.outputs.source_bucket, "key": key, "image_id": image_id,
               "site": "s1", "line": "l1", "device": "d1", "captured_at": "2026-12-05T00:00:00Z",
               "batch_id": "b-handover", "file_name": path.name}
    cloud.client("sqs").send_message(QueueUrl=cloud.outputs.queue_url, MessageBody=json.dumps(message))
    return image_id


def _entered(cloud: CloudFixture, arn: str) -> list[str]:
    """The states an execution entered, in order."""
    events = cloud.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def _chain(cloud: CloudFixture, first: str) -> list[dict[str, Any]]:
    """The first execution and its successors, oldest first (successors are named after it)."""
    listed = cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.outputs.state_machine_arn)["executions"]
    return sorted((e for e in listed if e["name"] == first or e["name"].startswith(first + "-h")),
                  key=lambda e: (e["name"] != first, int(e["name"].rsplit("-h", 1)[-1].split("-")[0] or 0)
                                 if e["name"] != first else 0))


def test_a_long_drain_hands_over_with_one_model_start_and_one_result_per_image(
        short_histories: CloudFixture, tmp_path: Any) -> None:
    cloud = short_histories
    images = {_queue(cloud, f.path) for f in generate(tmp_path, count=IMAGES, size=96, seed=20)}
    cloud.start_execution("long-drain")
    cloud.wait_for_executions(timeout=300)

    chain = _chain(cloud, "long-drain")
    # how many rounds a successor needs depends on the machine's pace: one hand-over at least
    assert len(chain) >= 2, f"expected a hand-over, got {[e['name'] for e in chain]}"
    assert all(e["status"] == "SUCCEEDED" for e in chain), [(e["name"], e["status"]) for e in chain]
    paths = [_entered(cloud, e["executionArn"]) for e in chain]
    assert paths[0].count("StartModel") == 1
    for path in paths[:-1]:
        assert path[-1] == "HandedOver" and "StopModel" not in path  # the model is passed on, not stopped
    for path in paths[1:]:
        assert path[:2] == ["IsHandOver", "TakeOver"] and "StartModel" not in path  # never started again
    assert paths[-1][-1] == "Done" and "StopModel" in paths[-1]  # the last one stops it

    assert len(cloud.hosted_intervals()) == 1, "one model start for the whole chain"
    assert cloud.hosting_state() == "STOPPED" and cloud.lock_owner() is None
    s3 = cloud.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=cloud.outputs.final_bucket,
                                                 Prefix="results/").get("Contents", []) if o["Key"].endswith(".json")]
    assert sorted(k.rsplit("/", 1)[-1][:-5] for k in keys) == sorted(images)  # one result each, none lost
    drained_by = {json.loads(s3.get_object(Bucket=cloud.outputs.final_bucket, Key=k)["Body"].read())["execution"]
                  for k in keys}
    assert len(drained_by) >= 2, "the successors drained on"
