"""ImageUpload=final-bucket: the gateway uploads each image to its place next to its result.

The stack's drain then moves nothing (no COPY, no DELETE: a PUT-priced request per image saved,
docs/cost.md). The real component, the real state machine and the drain on the local cloud, with
the stack's SOURCE_BUCKET set as the template sets it for that parameter.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.synth import generate
from tests.edge_process import Edge, edit_config, result_keys, write_config
from tests.support import CloudFixture, wait_for

pytestmark = pytest.mark.integration


def test_images_uploaded_to_the_final_bucket_are_judged_where_they_lie(
        local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber, tmp_path: Path) -> None:
    outputs, s3 = local_cloud.outputs, local_cloud.client("s3")
    frames = generate(tmp_path / "camera", count=10, size=128, seed=23, anomaly_rate=0.3)
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    edit_config(config, aws={"source_bucket": outputs.final_bucket})  # the stack output, as the template gives it
    previous = local_cloud.cloud.update_environment({"SOURCE_BUCKET": outputs.final_bucket})
    drop = tmp_path / "drop"
    drop.mkdir()
    edge = Edge(config, tmp_path / "edge.log")
    try:
        for frame in frames:
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
        wait_for(lambda: len(hmi.results) >= len(frames), 90, "every image's result")
    finally:
        assert edge.stop() == 0
        local_cloud.wait_for_executions()
        local_cloud.cloud.update_environment(previous)

    keys = result_keys(local_cloud)
    assert len(keys) == len(frames), "one result document per image"
    for key in keys:
        document = json.loads(s3.get_object(Bucket=outputs.final_bucket, Key=key)["Body"].read())
        assert document["source"] == {"bucket": outputs.final_bucket, "key": document["image"]["key"]}, \
            "the image was judged at its final place"
        assert document["image"]["key"] == key[:-len("json")] + document["image"]["key"].rsplit(".", 1)[1]
        versions = s3.list_object_versions(Bucket=outputs.final_bucket, Prefix=document["image"]["key"])
        assert len(versions["Versions"]) == 1, "uploaded once, never copied over"
        body = s3.get_object(Bucket=outputs.final_bucket, Key=document["image"]["key"])["Body"].read()
        assert hashlib.sha256(body).hexdigest() == document["image_id"]
    assert s3.list_objects_v2(Bucket=outputs.source_bucket)["KeyCount"] == 0, "the source bucket is not used"
    anomalous = {i for i, (_, m) in hmi.results.items() if m["is_anomalous"]}
    assert set(hmi.alerts) == anomalous and hmi.duplicates == 0
