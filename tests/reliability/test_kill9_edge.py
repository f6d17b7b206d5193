"""Kill -9 the component again and again in edge-first mode: its detector and decoder children
must not outlive it, and every image still gets exactly one verdict on MQTT (the edge's, or the cloud's when the
detector was down), a correction only where the cloud overruled a published one, and exactly
one result document for each image that went to the cloud.
"""
from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.synth import generate
from tests.edge_process import Edge, listen, result_keys, start_camera, write_config
from tests.missing_images import wait_for_every_result
from tests.reliability.faults import processes
from tests.support import CloudFixture, report_reliability, wait_for

pytestmark = pytest.mark.integration
IMAGES, KILLS = 60, 5
SERVE = b"batchsight_detector.serve"
DECODER = b"batchsight.decoder"


def test_sigkill_in_edge_first_mode_leaves_no_orphan_and_no_double_verdict(
        local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path, fitted_model: Path) -> None:
    rng = random.Random(9)
    model = tmp_path / "detector.npz"
    model.write_bytes(fitted_model.read_bytes())
    frames = generate(tmp_path / "camera", count=IMAGES, size=96, seed=43, anomaly_rate=0.25)
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    data = yaml.safe_load(config.read_text())
    data["inference"] = {"mode": "edge-first", "model": str(model), "audit_fraction": 0.3,
                         "endpoint": f"http://127.0.0.1:{free_port()}", "retry_seconds": 1.0}
    config.write_text(yaml.safe_dump(data))
    drop = tmp_path / "drop"
    drop.mkdir()
    hmi = listen(mqtt_broker.port)
    dropping = start_camera(frames, drop, lambda: rng.uniform(0.02, 0.12))
    edge = Edge(config, tmp_path / "edge.log")
    orphans_after_kill, decoders_at_kill = [], 0

    def orphans(decoders: list[int]) -> list[int]:
        return processes(SERVE, str(model).encode()) + sorted(set(decoders) & set(processes(DECODER)))

    try:
        # a loaded machine may start the program slower than the random waits below: the kills
        # begin once the decoder is at work, so the orphan check has a child to find
        first = edge.process.pid
        wait_for(lambda: processes(DECODER, parent=first), 30, "a decoder at work before the first kill")
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 1.5))
            decoders = processes(DECODER, parent=edge.process.pid)
            decoders_at_kill += len(decoders)
            edge.process.send_signal(signal.SIGKILL)
            edge.process.wait(timeout=10)
            deadline = time.monotonic() + 5
            while orphans(decoders) and time.monotonic() < deadline:
                time.sleep(0.1)
            orphans_after_kill.append(len(orphans(decoders)))
            edge = Edge(config, tmp_path / "edge.log")
        restarted = time.monotonic()
        dropping.join()
        wait_for_every_result(hmi, frames, 120, "a verdict for every image after the kills", tmp=tmp_path,
                              cloud=local_cloud)
        wait_for(lambda: any(s.get("alerted") == IMAGES for s in hmi.statuses[-3:]), 120,
                  "every image handed off, the cloud's checks included")
        recover_s = time.monotonic() - restarted
        time.sleep(1.0)
    finally:
        assert edge.stop() == 0
        hmi.stop()
    assert orphans_after_kill == [0] * KILLS, "the detector and decoder children stop within seconds of a kill -9"
    assert decoders_at_kill > 0, "the kills found a decoder at work"
    assert processes(SERVE, str(model).encode()) == [], "and with a clean stop"

    assert hmi.duplicates <= KILLS, "a duplicate needs a kill in the PUBACK window"
    sent_to_cloud = {i for i, (_, m) in hmi.results.items() if m["result_key"]}
    keys = result_keys(local_cloud)
    assert len(keys) == len(set(keys)) == len(sent_to_cloud), "one result document per image sent to the cloud"
    assert {k.rsplit("/", 1)[1][:-5] for k in keys} == sent_to_cloud
    for image_id, (_, correction) in hmi.corrections.items():
        cloud = json.loads(local_cloud.client("s3").get_object(
            Bucket=local_cloud.outputs.final_bucket, Key=correction["result_key"])["Body"].read())
        assert cloud["result"]["IsAnomalous"] == correction["is_anomalous"] != hmi.results[image_id][1]["is_anomalous"]
    by = {m["judged_by"] for _, m in hmi.results.values()}
    assert "edge" in by, "most images are judged at the edge"
    report_reliability("kill9-edge-first", dropped=IMAGES, accounted=len(hmi.results),
                       duplicates=hmi.duplicates, recover_s=recover_s)
