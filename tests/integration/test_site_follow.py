"""A site, not a line: when one gateway's batch has the model hosted, every other gateway of the
stack hears it by push and sends what waits at its edge at once, to ride that hosting
(``batch.follow``, site-wide), instead of waiting for its own batch age and a start of its own.

Two edge programs as real processes on one local stack (moto server, the real state machine,
the local backend), each with its own device id and result queue. Gateway B batches only after
an hour; gateway A after seconds. A's execution finds the model hosted and announces it to
every gateway's queue: B cuts a "follow" batch, and its images are judged within the test's
minutes, not B's hour.
"""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight_tools.synth import generate
from tests.edge_process import Edge, write_config
from tests.support import CloudFixture, wait_for

pytestmark = pytest.mark.integration


def gateway(tmp: Path, cloud: CloudFixture, broker_port: int, device: str, max_age_seconds: float) -> Path:
    """An edge config of its own: device id, folders, batch age; results pushed."""
    tmp.mkdir()
    path = write_config(tmp, cloud, broker_port)
    config = yaml.safe_load(path.read_text())
    config["device"] = device
    config["aws"]["result_queue_prefix"] = cloud.outputs.result_queue_prefix
    config["batch"] = {"interval_seconds": max_age_seconds, "max_images": 100, "max_age_seconds": max_age_seconds}
    path.write_text(yaml.safe_dump(config))
    (tmp / "drop").mkdir()
    return path


def results_of(cloud: CloudFixture, device: str) -> list[str]:
    listed = cloud.client("s3").list_objects_v2(Bucket=cloud.outputs.final_bucket, Prefix="results/")
    return [o["Key"] for o in listed.get("Contents", []) if f"/{device}/" in o["Key"] and o["Key"].endswith(".json")]


def cuts(log: Path) -> list[str]:
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [e["trigger"] for e in entries if e.get("message") == "batch cut"]


def waiting(tmp: Path) -> int:
    """Images in the gateway's journal (its real SQLite file) that no batch has taken yet."""
    with closing(sqlite3.connect(tmp / "work" / "journal.sqlite3", timeout=10)) as db:
        return int(db.execute("SELECT COUNT(*) FROM images WHERE batch_id IS NULL").fetchone()[0])


def drop(tmp: Path, count: int, seed: int) -> None:
    for frame in generate(tmp / "camera", count=count, size=128, seed=seed, anomaly_rate=0.0):
        (tmp / "drop" / frame.path.name).write_bytes(frame.path.read_bytes())


def test_a_hosting_started_by_one_gateway_is_ridden_by_the_others(
        local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path) -> None:
    slow = gateway(tmp_path / "b", local_cloud, mqtt_broker.port, "gw-hourly", max_age_seconds=3600)
    fast = gateway(tmp_path / "a", local_cloud, mqtt_broker.port, "gw-seconds", max_age_seconds=2)
    sqs = local_cloud.client("sqs")
    b = Edge(slow, tmp_path / "b.log")
    try:
        wait_for(lambda: bool(sqs.list_queues(QueueNamePrefix=f"{local_cloud.outputs.result_queue_prefix}-gw-hourly")
                              .get("QueueUrls")), 60, "gateway B's result queue")
        drop(tmp_path / "b", 3, seed=11)
        wait_for(lambda: waiting(tmp_path / "b") == 3, 60, "gateway B's images journaled and waiting")
        a = Edge(fast, tmp_path / "a.log")
        try:
            drop(tmp_path / "a", 2, seed=12)
            wait_for(lambda: len(results_of(local_cloud, "gw-seconds")) == 2, 120, "gateway A's results")
            wait_for(lambda: len(results_of(local_cloud, "gw-hourly")) == 3, 120,
                     "gateway B's images, sent on A's hosting rather than after B's hour")
        finally:
            assert a.stop() == 0
    finally:
        assert b.stop() == 0
    assert "follow" in cuts(tmp_path / "b.log") and "age" not in cuts(tmp_path / "b.log")
