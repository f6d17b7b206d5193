"""Overload under moto: arrivals beyond the ceiling scale the drain, saturate, and reach the gateway.

The real state machine, the functions in-process, the local model: one unit of capacity drains
1 image a second (DetectTps 1), scaling is allowed to 2 units, and images arrive at 3 a second
until the gateway has heard that the pipeline is saturated (a minute and a half at most).
CheckWork measures the arrivals, runs 2 units (4 drain workers), finds the pipeline saturated at
its ceiling two checks in a row (the `Overloaded` metric that PipelineOverloadedAlarm watches is
1) and writes backpressure into the pipeline status; the gateway's own housekeeping reads it and
says so, and re-sends nothing. Once the arrivals stop, the backlog clears and every image has one
result. (The issue's 30 minutes at twice the model's rate is `python bench/overload.py`, its
output in docs/reliability.md.)
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchsight.config import config_from_dict
from batchsight.housekeeping import Housekeeper
from batchsight.journal import Journal
from batchsight.lost_images import LossCheck
from batchsight_tools.synth import generate
from tests.support import CloudFixture, wait_for

pytestmark = pytest.mark.integration
DRAIN_FUNCTION = "batchsight-DrainFunction"
DRAIN_TIMEOUT = 58
PER_SECOND, SECONDS = 3, 90  # SECONDS: the longest the arrivals go on, saturation unseen


@pytest.fixture
def slow_model(local_cloud: CloudFixture) -> Iterator[CloudFixture]:
    """One unit drains 1 image/s; 2 units allowed; a backlog should clear within a minute; rounds
    of about 23 s (a 58 s drain timeout: receives stop 37 s before its end, as one image may need
    35 s), just longer than the 20 s CheckWork needs to measure a rate (overload.MIN_SAMPLE_SECONDS)."""
    lam = local_cloud.client("lambda")
    timeout = lam.get_function_configuration(FunctionName=DRAIN_FUNCTION)["Timeout"]
    previous = local_cloud.cloud.update_environment(
        {"DETECT_TPS": "1", "MAX_SCALE_UNITS": "2", "BACKLOG_TARGET_MINUTES": "1"})
    lam.update_function_configuration(FunctionName=DRAIN_FUNCTION, Timeout=DRAIN_TIMEOUT)
    try:
        yield local_cloud
    finally:
        local_cloud.wait_for_executions(timeout=400)
        local_cloud.cloud.update_environment(previous)
        lam.update_function_configuration(FunctionName=DRAIN_FUNCTION, Timeout=timeout)


def _feed(cloud: CloudFixture, paths: list[Path], sent: list[str], stop: threading.Event) -> None:
    """Upload and enqueue ``PER_SECOND`` images a second, as gateways would, until ``stop`` is set."""
    s3, sqs = cloud.client("s3"), cloud.client("sqs")
    started = time.monotonic()
    for n, path in enumerate(paths):
        if stop.wait(max(0.0, n / PER_SECOND - (time.monotonic() - started))):
            return
        data = path.read_bytes()
        image_id = hashlib.sha256(data).hexdigest()
        key = f"incoming/s1/l1/d1/2026/12/05/{image_id}{path.suffix}"
        s3.put_object(Bucket=cloud.outputs.source_bucket, Key=key, Body=data)
        sqs.send_message(QueueUrl=cloud.outputs.queue_url, MessageBody=json.dumps({
            "v": 1, "bucket": cloud.outputs.source_bucket, "key": key, "image_id": image_id, "site": "s1",
            "line": "l1", "device": "d1", "captured_at": "2026-12-05T00:00:00Z", "batch_id": "b-load",
            "file_name": path.name}))
        sent.append(image_id)


def test_arrivals_beyond_the_ceiling_scale_saturate_and_tell_the_gateway(
        slow_model: CloudFixture, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cloud = slow_model
    gateway = config_from_dict({
        "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
        "aws": {"source_bucket": cloud.outputs.source_bucket, "final_bucket": cloud.outputs.final_bucket,
                "queue_url": cloud.outputs.queue_url, "state_machine_arn": cloud.outputs.state_machine_arn}})
    losses = LossCheck(gateway, s3=cloud.client("s3"))
    keeper = Housekeeper(gateway, Journal(gateway.journal_path), losses=losses)
    paths = [f.path for f in generate(tmp_path / "frames", count=PER_SECOND * SECONDS, size=64, seed=7)]
    sent: list[str] = []
    saturated = threading.Event()  # the arrivals stop once the gateway has heard it: the rest is the recovery
    feeder = threading.Thread(target=_feed, args=(cloud, paths, sent, saturated), daemon=True)
    feeder.start()
    wait_for(lambda: len(sent) >= 2 * PER_SECOND, 30, "the first images enqueued")
    cloud.start_execution("under-load")
    alarms, backlogs = [], []
    deadline = time.monotonic() + SECONDS + 600  # the arrivals, then a backlog cleared in minutes: bounded
    while feeder.is_alive() or cloud.client("stepfunctions").list_executions(
            stateMachineArn=cloud.outputs.state_machine_arn, statusFilter="RUNNING")["executions"]:
        assert time.monotonic() < deadline, f"the pipeline still runs {SECONDS + 600} s after the arrivals began"
        alarms.append(keeper.resubmit_overdue(time.time()))
        if alarms[-1] and "cloud pipeline saturated" in alarms[-1]:
            saturated.set()
        status = losses.status()
        backlogs.append(status.backlog if status else 0)
        time.sleep(2)
    feeder.join()

    emitted = capfd.readouterr().out
    loads = [json.loads(line) for line in emitted.splitlines() if '"ScaleUnits"' in line]
    seen = [(m["ScaleUnits"][0], m["Overloaded"][0], round(m["ArrivalRate"][0]), round(m["DrainRate"][0]))
            for m in loads]
    print(f"OVERLOAD checks (units, overloaded, arrivals/min, drain/min): {seen}")
    assert '"ScaleUnits":[2.0]' in emitted, "scaled to the ceiling of 2 units"
    assert '"Overloaded":[1.0]' in emitted, "the metric PipelineOverloadedAlarm watches went to 1"
    assert any(a and "cloud pipeline saturated" in a for a in alarms), "backpressure reached the gateway"
    assert max(backlogs) < len(sent), "the backlog stayed bounded below everything sent"
    final = losses.status()
    assert final and not final.backpressure and final.backlog == 0, "clear once the arrivals stop"
    listed = cloud.client("s3").list_objects_v2(Bucket=cloud.outputs.final_bucket, Prefix="results/")
    results = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".json")]
    assert sorted(k.rsplit("/", 1)[-1][:-5] for k in results) == sorted(sent), "one result per image"
    assert cloud.hosting_state() == "STOPPED"
    print(f"OVERLOAD sent={len(sent)} max_backlog={max(backlogs)} alarms={sum(1 for a in alarms if a)}")

