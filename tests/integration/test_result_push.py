"""Results pushed to the gateway: the edge program as a real process, moto server with the real
state machine and drain, a real broker.

With push (the gateway creates its queue ``{ResultQueuePrefix}-{device}`` at start, the drain
sends each result there) every result reaches MQTT and the gateway never lists its results
prefix: it says how many ListObjectsV2 pages it requested in its "result traffic" log line at
shutdown. With push switched off, or a drain that pushes nothing, the results still come, by
listing.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.synth import generate
from tests.edge_process import DEVICE, Edge, edit_config, result_keys, write_config
from tests.support import CloudFixture, wait_for

pytestmark = pytest.mark.integration
FRAMES = 8


def traffic(log: Path) -> dict[str, Any]:
    """The gateway's own count of its result calls, from its log line at shutdown."""
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    (entry,) = [e for e in entries if e.get("message") == "result traffic"]
    return entry


def run_line(tmp_path: Path, cloud: CloudFixture, broker_port: int, hmi: Subscriber,
             **groups: dict[str, object]) -> dict[str, Any]:
    """Drop FRAMES images, wait for each result on MQTT, stop the gateway; its result traffic."""
    config = write_config(tmp_path, cloud, broker_port)
    edit_config(config, aws={"result_queue_prefix": cloud.outputs.result_queue_prefix}, **groups)
    drop, log = tmp_path / "drop", tmp_path / "edge.log"
    drop.mkdir()
    edge = Edge(config, log)
    try:
        for frame in generate(tmp_path / "camera", count=FRAMES, size=128, seed=5, anomaly_rate=0.3):
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
        wait_for(lambda: len(hmi.results) >= FRAMES, 120, "every result on MQTT")
    finally:
        assert edge.stop() == 0
    assert len(set(result_keys(cloud))) == FRAMES and hmi.duplicates == 0
    return traffic(log)


def test_results_arrive_by_push_and_the_gateway_lists_nothing(local_cloud: CloudFixture, mqtt_broker: Any,
                                                              hmi: Subscriber, tmp_path: Path) -> None:
    counted = run_line(tmp_path, local_cloud, mqtt_broker.port, hmi)
    assert counted["list_pages"] == 0 and counted["receives"] > 0
    queue = f"{local_cloud.outputs.result_queue_prefix}-{DEVICE}"
    assert local_cloud.client("sqs").get_queue_url(QueueName=queue)["QueueUrl"]
    # each result reached MQTT before a fallback listing could have run
    s3 = local_cloud.client("s3")
    for key in result_keys(local_cloud):
        document = json.loads(s3.get_object(Bucket=local_cloud.outputs.final_bucket, Key=key)["Body"].read())
        arrived, _ = hmi.results[document["image_id"]]
        assert arrived - datetime.fromisoformat(document["processed_at"]).timestamp() < 120


@pytest.fixture
def drain_pushes_nothing(local_cloud: CloudFixture) -> Iterator[None]:
    """The stack's drain without a result queue prefix (a stack from before push)."""
    previous = local_cloud.cloud.update_environment({"RESULT_QUEUE_PREFIX": ""})
    yield
    local_cloud.cloud.update_environment(previous)


def test_results_push_cannot_bring_are_listed_after_the_fallback_silence(
        local_cloud: CloudFixture, drain_pushes_nothing: None, mqtt_broker: Any, hmi: Subscriber,
        tmp_path: Path) -> None:
    counted = run_line(tmp_path, local_cloud, mqtt_broker.port, hmi, results={"poll_seconds": 0.5,
                                                                              "fallback_seconds": 2.0})
    assert counted["list_pages"] > 0


def test_with_push_off_results_are_listed(local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber,
                                          tmp_path: Path) -> None:
    counted = run_line(tmp_path, local_cloud, mqtt_broker.port, hmi, results={"poll_seconds": 0.5, "push": False})
    assert counted["list_pages"] > 0 and counted["receives"] == 0
