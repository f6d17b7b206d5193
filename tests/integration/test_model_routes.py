"""Many models on one stack: each route's images judged by its own model, under its own lock.

The local cloud (moto server, the real state machine, the functions in-process) with the
``local`` backend; the second model is a route added with `batchsight model route`, as a
person adds one, whose LOCAL_MODEL_PATH names a model file of its own. Two executions, one per
route, run at once: each hosts its own model (its own hosting ledger), neither waits for the
other's drain, and a route whose model cannot start fails alone.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from batchsight_tools.models import cli as model_cli
from batchsight_tools.synth import generate
from tests.support import CloudFixture

pytestmark = pytest.mark.integration


def add_route(cloud: CloudFixture, name: str, model: Path, *, startup_seconds: int = 1) -> str:
    """`batchsight model route NAME --set LOCAL_MODEL_PATH=...`; the route's queue URL."""
    assert model_cli.main(["route", name, "--routes-path", cloud.outputs.extra["ModelRoutesPath"],
                           "--queue-url", cloud.outputs.queue_url, "--endpoint-url", cloud.outputs.endpoint_url,
                           "--set", f"LOCAL_MODEL_PATH={model}",
                           "--set", f"LOCAL_MODEL_STARTUP_SECONDS={startup_seconds}"]) == 0
    parameter = cloud.client("ssm").get_parameter(Name=f"{cloud.outputs.extra['ModelRoutesPath']}/{name}")
    return str(json.loads(parameter["Parameter"]["Value"])["QUEUE_URL"])


def enqueue(cloud: CloudFixture, queue_url: str, device: str, tmp_path: Path, *, seed: int) -> set[str]:
    """Six images of one gateway, uploaded and queued as the gateway does; their ids."""
    ids = set()
    for frame in generate(tmp_path / device, count=6, size=128, seed=seed):
        data = frame.path.read_bytes()
        image_id = hashlib.sha256(data).hexdigest()
        key = f"incoming/s1/{device}-line/{device}/2026/12/05/{image_id}{frame.path.suffix}"
        cloud.client("s3").put_object(Bucket=cloud.outputs.source_bucket, Key=key, Body=data)
        message = {"v": 1, "bucket": cloud.outputs.source_bucket, "key": key, "image_id": image_id, "site": "s1",
                   "line": f"{device}-line", "device": device, "batch_id": f"{device}-b1", "file_name": frame.path.name,
                   "captured_at": datetime(2026, 12, 5, 6, tzinfo=UTC).isoformat().replace("+00:00", "Z")}
        cloud.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(message))
        ids.add(image_id)
    return ids


def results(cloud: CloudFixture) -> dict[str, dict[str, Any]]:
    s3 = cloud.client("s3")
    listed = s3.list_objects_v2(Bucket=cloud.outputs.final_bucket, Prefix="results/").get("Contents", [])
    documents = [json.loads(s3.get_object(Bucket=cloud.outputs.final_bucket, Key=o["Key"])["Body"].read())
                 for o in listed if o["Key"].endswith(".json")]
    return {document["image_id"]: document for document in documents}


def ledger(folder: Path) -> list[dict[str, Any]]:
    path = folder / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def edge_input(route: str, device: str) -> dict[str, Any]:
    return {"v": 1, "trigger": "edge", "batch_id": f"{device}-b1", "site": "s1", "line": f"{device}-line",
            "device": device, "image_count": 6, "route": route}


def test_two_models_on_one_stack_judge_their_own_images_at_the_same_time(
        local_cloud: CloudFixture, tmp_path: Path) -> None:
    pcb_model = tmp_path / "pcb-detector.npz"
    shutil.copy(local_cloud.model_path, pcb_model)
    pcb_queue = add_route(local_cloud, "pcb", pcb_model, startup_seconds=4)  # hosted long enough to overlap
    casting = enqueue(local_cloud, local_cloud.outputs.queue_url, "cast1", tmp_path, seed=11)
    pcb = enqueue(local_cloud, pcb_queue, "pcb1", tmp_path, seed=12)

    runs = {route: local_cloud.start_execution(f"{route}-run", edge_input(route, device))  # pcb's slow start first
            for route, device in (("pcb", "pcb1"), ("default", "cast1"))}
    ended = {route: local_cloud.wait_execution(arn, timeout=120) for route, arn in runs.items()}
    assert {route: e["status"] for route, e in ended.items()} == {"pcb": "SUCCEEDED", "default": "SUCCEEDED"}

    judged = results(local_cloud)
    assert set(judged) == casting | pcb, "every image has exactly one result"
    for image_id, document in judged.items():
        route, model = ("pcb", pcb_model.name) if image_id in pcb else ("default", local_cloud.model_path.name)
        assert document["model"]["name"] == model, "judged by its own route's model"
        assert document["execution"].endswith(f":{route}-run"), "drained by its own route's execution"
    hosted = {"default": ledger(local_cloud.state_dir), "pcb": ledger(local_cloud.state_dir / "routes" / "pcb")}
    assert [len(intervals) for intervals in hosted.values()] == [1, 1], "each model hosted once, on its own"
    [default], [pcb] = hosted["default"], hosted["pcb"]
    assert max(default["started"], pcb["started"]) < min(default["stopped"], pcb["stopped"]), \
        "both models hosted at once: neither waited for the other's drain"
    table = local_cloud.outputs.extra["LockTableName"]
    assert local_cloud.client("dynamodb").scan(TableName=table)["Items"] == [], "both locks released"


def test_a_route_gets_a_copy_of_the_stacks_backlog_alarm_on_its_own_queue(
        local_cloud: CloudFixture, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The local stack makes the template's alarms; the route's copy keeps the threshold and the
    notification topic, and watches the route's queue."""
    add_route(local_cloud, "pcb", local_cloud.model_path)
    assert "alarm batchsight-backlog-too-old-pcb: the queue's oldest image older than 60 minutes" \
        in capsys.readouterr().out
    cloudwatch = local_cloud.client("cloudwatch")
    stack_alarm, route_alarm = (cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]
                                for name in ("batchsight-backlog-too-old", "batchsight-backlog-too-old-pcb"))
    for key in ("Threshold", "AlarmActions", "ComparisonOperator", "EvaluationPeriods", "TreatMissingData"):
        assert route_alarm[key] == stack_alarm[key], key
    assert route_alarm["AlarmActions"] == [local_cloud.outputs.extra["NotificationTopicArn"]]
    watched = [query["MetricStat"]["Metric"] for query in route_alarm["Metrics"] if "MetricStat" in query]
    assert [m["Dimensions"] for m in watched] == [[{"Name": "QueueName", "Value": "batchsight-work-pcb"}]]
    assert watched[0]["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert model_cli.main(["routes", "--routes-path", local_cloud.outputs.extra["ModelRoutesPath"],
                           "--queue-url", local_cloud.outputs.queue_url,
                           "--endpoint-url", local_cloud.outputs.endpoint_url]) == 0
    listed = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]}
    assert listed["default"] != "none" and listed["pcb"] != "none", "both queues have their backlog alarm"


def test_a_model_that_cannot_start_fails_its_own_route_only(local_cloud: CloudFixture, tmp_path: Path) -> None:
    broken_queue = add_route(local_cloud, "broken", tmp_path / "never-fitted.npz")
    casting = enqueue(local_cloud, local_cloud.outputs.queue_url, "cast1", tmp_path, seed=13)
    waiting = enqueue(local_cloud, broken_queue, "brk1", tmp_path, seed=14)
    runs = {route: local_cloud.start_execution(f"{route}-fails-alone", edge_input(route, device))
            for route, device in (("broken", "brk1"), ("default", "cast1"))}
    ended = {route: local_cloud.wait_execution(arn, timeout=120) for route, arn in runs.items()}
    assert ended["default"]["status"] == "SUCCEEDED" and set(results(local_cloud)) == casting
    assert ended["broken"]["status"] == "FAILED"
    attributes = local_cloud.client("sqs").get_queue_attributes(
        QueueUrl=broken_queue, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])
    assert sum(int(v) for v in attributes["Attributes"].values()) == len(waiting), "its images wait, none lost"
    table = local_cloud.outputs.extra["LockTableName"]
    assert local_cloud.client("dynamodb").scan(TableName=table)["Items"] == [], "the failed route let its lock go"
