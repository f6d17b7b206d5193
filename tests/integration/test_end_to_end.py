"""Camera drop to MQTT alert: the edge program as a real process, moto server, a real broker.

Also checks the two lifecycle promises of the walking skeleton: SIGTERM stops the program
cleanly, and files dropped while it was down are picked up when it comes back.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.synth import generate
from tests.edge_process import DEVICE, LINE, SITE, Edge, result_keys, write_config
from tests.support import CloudFixture, load_schema, report_reliability, wait_for

pytestmark = pytest.mark.integration
def test_camera_drop_to_mqtt_alert(local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber,
                                   tmp_path: Path) -> None:
    frames = generate(tmp_path / "camera", count=14, size=128, seed=21, anomaly_rate=0.3)
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this JPEG stops here")
    edge = Edge(write_config(tmp_path, local_cloud, mqtt_broker.port), tmp_path / "edge.log")
    try:
        for frame in frames[:10]:
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
        wait_for(lambda: len(hmi.results) >= 10, 90, "the first 10 results on MQTT")
        assert edge.stop() == 0, "SIGTERM must stop the component cleanly"
        # dropped while the component is down, into a camera's subfolder: picked up at start-up
        (drop / "cam2").mkdir()
        for frame in frames[10:]:
            (drop / "cam2" / frame.path.name).write_bytes(frame.path.read_bytes())
        edge = Edge(write_config(tmp_path, local_cloud, mqtt_broker.port), tmp_path / "edge.log")
        restarted = time.monotonic()
        wait_for(lambda: len(hmi.results) >= len(frames), 90, "all results on MQTT")
        recover_s = time.monotonic() - restarted
        time.sleep(1.0)  # anything extra (a duplicate) would arrive now
    finally:
        assert edge.stop() == 0

    keys = result_keys(local_cloud)
    assert len(keys) == len(set(keys)) == len(frames), "exactly one result document per image"
    assert hmi.duplicates == 0
    anomalous = {i for i, (_, m) in hmi.results.items() if m["is_anomalous"]}
    assert set(hmi.alerts) == anomalous, "one alert per anomalous result, no more"
    schema = load_schema("mqtt_result")
    for _, message in [*hmi.results.values(), *hmi.alerts.values()]:
        jsonschema.validate(message, schema)
    for message in hmi.batches:
        jsonschema.validate(message, load_schema("mqtt_batch"))
    assert sum(b["images"] for b in hmi.batches) == len(frames)
    for message in hmi.statuses:
        jsonschema.validate(message, load_schema("mqtt_status"))
    quarantine = tmp_path / "work" / "quarantine"
    reasons = [p.read_text() for p in quarantine.glob("*.reason.txt")]
    assert len(reasons) == 1 and "does not decode" in reasons[0]
    # retention: local copies are gone once their result is safe
    assert list((tmp_path / "work" / "spool").iterdir()) == []
    assert [p.name for p in drop.rglob("*")] == ["cam2"], "every file taken, the camera's folder left"
    names = {m["file_name"] for _, m in hmi.results.values()}
    assert names == {f.path.name for f in frames[:10]} | {f"cam2/{f.path.name}" for f in frames[10:]}
    labels = {f.path.name: f.label for f in frames}
    correct = sum(m["is_anomalous"] == (labels[Path(m["file_name"]).name] == "anomaly")
                  for _, m in hmi.results.values())
    assert correct / len(frames) >= 0.8, f"detector accuracy {correct}/{len(frames)}"
    report_reliability("sigterm-restart", dropped=len(frames) + 1, accounted=len(keys) + len(reasons),
                       duplicates=hmi.duplicates, recover_s=recover_s)


def test_component_refuses_to_start_on_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(json.dumps({"batch": {"max_images": -5}}))
    result = subprocess.run([sys.executable, "-m", "batchsight", "run", "--config", str(config)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "aws.source_bucket" in result.stderr or "batch.max_images" in result.stderr


def test_images_keep_spooling_while_the_cloud_is_unreachable(local_cloud: CloudFixture, mqtt_broker: Any,
                                                             hmi: Subscriber, tmp_path: Path) -> None:
    from tests.support import TcpGate

    gate = TcpGate(int(local_cloud.outputs.endpoint_url.rsplit(":", 1)[1]))
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    data = yaml.safe_load(config.read_text())
    data["aws"]["endpoint_url"] = f"http://127.0.0.1:{gate.port}"
    config.write_text(yaml.safe_dump(data))
    frames = generate(tmp_path / "camera", count=8, size=128, seed=31)
    gate.cut()
    edge = Edge(config, tmp_path / "edge.log")
    try:
        (tmp_path / "drop").mkdir(exist_ok=True)
        for frame in frames:
            (tmp_path / "drop" / frame.path.name).write_bytes(frame.path.read_bytes())
        wait_for(lambda: any(s.get("cloud") == "unreachable" for s in hmi.statuses), 60,
                  "the status topic to say the cloud is unreachable")
        assert len(list((tmp_path / "work" / "spool").iterdir())) == len(frames), "all spooled, none lost"
        gate.restore()
        restored = time.monotonic()
        wait_for(lambda: len(hmi.results) >= len(frames), 120, "the backlog to drain after reconnecting")
        recover_s = time.monotonic() - restored
        wait_for(lambda: hmi.statuses[-1].get("cloud") == "ok", 30, "the status to say the cloud is back")
    finally:
        assert edge.stop() == 0
        gate.close()
    assert len(result_keys(local_cloud)) == len(frames)
    assert hmi.duplicates == 0
    report_reliability("cloud-unreachable", dropped=len(frames), accounted=len(result_keys(local_cloud)),
                       duplicates=hmi.duplicates, recover_s=recover_s)


def test_a_wrong_bucket_name_raises_an_alarm_that_says_what_to_fix(local_cloud: CloudFixture, mqtt_broker: Any,
                                                                  hmi: Subscriber, tmp_path: Path) -> None:
    """Retrying never cures a refusal: the status names it and the fix, the images wait, and the
    restart Greengrass makes with the corrected configuration sends them."""
    frames = generate(tmp_path / "camera", count=3, size=96, seed=57)
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    right = config.read_text()
    data = yaml.safe_load(right)
    data["aws"]["source_bucket"] = "no-such-source-bucket"
    config.write_text(yaml.safe_dump(data))
    (tmp_path / "drop").mkdir()
    edge = Edge(config, tmp_path / "edge.log")
    try:
        for frame in frames:
            (tmp_path / "drop" / frame.path.name).write_bytes(frame.path.read_bytes())

        def alarm() -> str | None:
            return next((a for s in hmi.statuses for a in s.get("alarms", []) if "NoSuchBucket" in a), None)

        wait_for(alarm, 60, "an alarm naming the refusal")
        assert "AWS refuses PutObject (NoSuchBucket)" in alarm() and "compare aws.*" in alarm()
        assert hmi.statuses[-1]["cloud"] == "unreachable" and hmi.statuses[-1]["waiting"] == len(frames)
        assert edge.stop() == 0
        config.write_text(right)
        edge = Edge(config, tmp_path / "edge.log")
        wait_for(lambda: len(hmi.results) >= len(frames), 90, "the images sent after the fix")
        wait_for(lambda: not hmi.statuses[-1].get("alarms"), 30, "the alarm to clear")
    finally:
        assert edge.stop() == 0
    assert len(result_keys(local_cloud)) == len(frames)


def test_operator_feedback_over_mqtt_becomes_a_label(local_cloud: CloudFixture, mqtt_broker: Any,
                                                     hmi: Subscriber, tmp_path: Path) -> None:
    from awscrt import io as crt_io, mqtt as crt_mqtt

    frames = generate(tmp_path / "camera", count=3, size=128, seed=51)
    (tmp_path / "drop").mkdir()
    edge = Edge(write_config(tmp_path, local_cloud, mqtt_broker.port), tmp_path / "edge.log")
    replies: list[dict] = []
    loop = crt_io.EventLoopGroup(1)
    bootstrap = crt_io.ClientBootstrap(loop, crt_io.DefaultHostResolver(loop))
    operator = crt_mqtt.Connection(client=crt_mqtt.Client(bootstrap, None),
                                   host_name="127.0.0.1", port=mqtt_broker.port, client_id="hmi-operator")
    operator.connect().result(10)
    base = f"factory/{SITE}/{LINE}/{DEVICE}/inspection"
    operator.subscribe(f"{base}/feedback/response", crt_mqtt.QoS.AT_LEAST_ONCE,
                       callback=lambda topic, payload, **_: replies.append(json.loads(payload)))[0].result(10)
    try:
        for frame in frames:
            (tmp_path / "drop" / frame.path.name).write_bytes(frame.path.read_bytes())
        wait_for(lambda: len(hmi.results) >= len(frames), 90, "results")
        image_id = next(iter(hmi.results))
        for body in (json.dumps({"v": 1, "image_id": image_id, "verdict": "false_alarm", "operator": "op-1"}),
                     "{not json"):
            operator.publish(f"{base}/feedback", body.encode(), crt_mqtt.QoS.AT_LEAST_ONCE)[0].result(10)
        wait_for(lambda: len(replies) >= 2, 30, "two feedback replies")
        key = hmi.results[image_id][1]["result_key"].replace(".json", ".label.manifest")
        wait_for(lambda: _exists(local_cloud, key), 30, "the label manifest in the final bucket")
    finally:
        operator.disconnect().result(10)
        assert edge.stop() == 0
    assert [r["ok"] for r in replies] == [True, False]
    s3 = local_cloud.client("s3")
    line = json.loads(s3.get_object(Bucket=local_cloud.outputs.final_bucket, Key=key)["Body"].read())
    assert line["anomaly-label-metadata"]["human-annotated"] == "yes"


def _exists(cloud: CloudFixture, key: str) -> bool:
    listed = cloud.client("s3").list_objects_v2(Bucket=cloud.outputs.final_bucket, Prefix=key)
    return listed.get("KeyCount", 0) > 0
