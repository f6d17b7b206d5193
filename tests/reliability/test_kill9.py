"""Kill -9 the edge program again and again while it works; nothing may be lost or doubled.

A camera drops images throughout; the component is killed with SIGKILL at random moments
(during detection, hashing, upload, enqueue, start, result pull or publishing, wherever it
happens to be) and restarted. At the end every image has exactly one result document and at
least one result message (exactly one unless a kill fell between a broker's PUBACK and the
journal noting it, which QoS 1 allows and the payload's image_id lets consumers drop).
"""
from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from batchsight_tools.synth import generate
from tests.edge_process import Edge, listen, result_keys, start_camera, write_config
from tests.missing_images import wait_for_every_result
from tests.support import CloudFixture, report_reliability

pytestmark = pytest.mark.integration
IMAGES, KILLS = 300, 12


def test_sigkill_at_random_points_loses_and_doubles_nothing(local_cloud: CloudFixture, mqtt_broker: Any,
                                                            tmp_path: Path) -> None:
    rng = random.Random(8)
    frames = generate(tmp_path / "camera", count=IMAGES, size=96, seed=41, anomaly_rate=0.2)
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    drop = tmp_path / "drop"
    drop.mkdir()
    hmi = listen(mqtt_broker.port)
    dropping = start_camera(frames, drop, lambda: rng.uniform(0.01, 0.1))
    edge = Edge(config, tmp_path / "edge.log")
    try:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.5, 2.5))  # while the camera still drops
            edge.process.send_signal(signal.SIGKILL)
            edge.process.wait(timeout=10)
            edge = Edge(config, tmp_path / "edge.log")
        restarted = time.monotonic()
        dropping.join()
        wait_for_every_result(hmi, frames, 240, "every image's result after the kills", tmp=tmp_path, cloud=local_cloud)
        recover_s = time.monotonic() - restarted
        time.sleep(1.0)
    finally:
        assert edge.stop() == 0
        hmi.stop()

    keys = result_keys(local_cloud)
    assert len(keys) == len(set(keys)) == IMAGES, "exactly one result document per image"
    assert set(hmi.results) == {k.rsplit("/", 1)[1][:-5] for k in keys}
    assert set(hmi.alerts) == {i for i, (_, m) in hmi.results.items() if m["is_anomalous"]}, \
        "an alert for every anomalous image, none for the others"
    doubled = hmi.duplicates
    print(f"\nkill -9 run: {IMAGES} images, {KILLS} kills, {len(keys)} result documents, "
          f"{len(hmi.results)} images published, {doubled} duplicate result/alert messages")
    report_reliability("kill9-random", dropped=IMAGES, accounted=len(keys), duplicates=doubled, recover_s=recover_s)
    assert doubled <= KILLS, "a duplicate needs a kill in the PUBACK window"
    assert list((tmp_path / "work" / "quarantine").glob("*")) == [], "no good image was quarantined"
