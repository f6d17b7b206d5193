"""Edge inference modes end to end: the component process runs `batchsight serve` itself,
moto serves the cloud, mosquitto carries what a PLC would read.

Cloud mode is tests/integration/test_end_to_end.py; here: edge, edge-first with
corrections, and the fallback to the cloud when the local model is missing.
"""
from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from batchsight_detector import DetectorModel
from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.synth import generate
from tests.edge_process import Edge, Operator, result_keys, write_config
from tests.support import CloudFixture, load_schema, wait_for

pytestmark = pytest.mark.integration


def _edge_config(tmp: Path, cloud: CloudFixture, broker_port: int, **inference: Any) -> Path:
    path = write_config(tmp, cloud, broker_port)
    data = yaml.safe_load(path.read_text())
    data["inference"] = {"endpoint": f"http://127.0.0.1:{free_port()}", "retry_seconds": 1.0, **inference}
    path.write_text(yaml.safe_dump(data))
    return path


def _drop(tmp: Path, frames: list[Any]) -> None:
    drop = tmp / "drop"
    drop.mkdir(exist_ok=True)
    for frame in frames:
        (drop / frame.path.name).write_bytes(frame.path.read_bytes())


def _executions(cloud: CloudFixture) -> list[dict[str, Any]]:
    return cloud.client("stepfunctions").list_executions(
        stateMachineArn=cloud.outputs.state_machine_arn)["executions"]


def _cloud_work(cloud: CloudFixture) -> tuple[list[str], list[str]]:
    return result_keys(cloud), [e["name"] for e in _executions(cloud)]


def _validate(hmi: Subscriber) -> None:
    for _, message in [*hmi.results.values(), *hmi.alerts.values()]:
        jsonschema.validate(message, load_schema("mqtt_result"))
    for _, message in hmi.corrections.values():
        jsonschema.validate(message, load_schema("mqtt_correction"))
    for message in hmi.statuses:
        jsonschema.validate(message, load_schema("mqtt_status"))


def test_edge_mode_alerts_at_once_without_the_cloud(local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber,
                                                    tmp_path: Path, fitted_model: Path) -> None:
    frames = generate(tmp_path / "camera", count=10, size=128, seed=61, anomaly_rate=0.4)
    cloud_before = _cloud_work(local_cloud)  # the cloud is shared by the session
    edge = Edge(_edge_config(tmp_path, local_cloud, mqtt_broker.port, mode="edge", model=str(fitted_model)),
                tmp_path / "edge.log")
    try:
        _drop(tmp_path, frames)
        wait_for(lambda: len(hmi.results) >= len(frames), 60, "every image judged at the edge")
        wait_for(lambda: any(s.get("judged_at_edge") == len(frames) for s in hmi.statuses), 30,
                  "the status to count them")
    finally:
        assert edge.stop() == 0
    assert {m["judged_by"] for _, m in hmi.results.values()} == {"edge"}
    assert set(hmi.alerts) == {i for i, (_, m) in hmi.results.items() if m["is_anomalous"]}
    labels = {f.path.name: f.label for f in frames}
    correct = sum(m["is_anomalous"] == (labels[m["file_name"]] == "anomaly") for _, m in hmi.results.values())
    assert correct >= len(frames) - 1, f"local detector accuracy {correct}/{len(frames)}"
    assert _cloud_work(local_cloud) == cloud_before, "the cloud was not used"
    assert any(s["judging"] == "edge" and s["inference"] == "edge" for s in hmi.statuses)
    assert hmi.duplicates == 0 and list((tmp_path / "work" / "spool").iterdir()) == []
    _validate(hmi)


def test_edge_first_publishes_at_once_and_the_cloud_corrects(local_cloud: CloudFixture, mqtt_broker: Any,
                                                             hmi: Subscriber, tmp_path: Path,
                                                             fitted_model: Path) -> None:
    """A jumpy local model (threshold far too low: everything anomalous) audited by the cloud."""
    jumpy = DetectorModel.load(fitted_model)
    jumpy.threshold = -1.0
    jumpy.save(tmp_path / "jumpy.npz")
    frames = generate(tmp_path / "camera", count=8, size=128, seed=62, anomaly_rate=0.5)
    edge = Edge(_edge_config(tmp_path, local_cloud, mqtt_broker.port, mode="edge-first",
                             model=str(tmp_path / "jumpy.npz"), audit_fraction=1.0), tmp_path / "edge.log")
    try:
        _drop(tmp_path, frames)
        wait_for(lambda: len(hmi.alerts) >= len(frames), 60, "every local verdict (all alerts) at once")
        wait_for(lambda: len(result_keys(local_cloud)) >= len(frames), 90, "the cloud's verdicts")
        wait_for(lambda: any(s.get("audited") == len(frames) and s.get("alerted") == len(frames)
                              for s in hmi.statuses), 60, "every audited image handed off")
    finally:
        assert edge.stop() == 0
    cloud_normal = {i for i in hmi.results if not _cloud_verdict(local_cloud, i)}
    assert cloud_normal, "the generated set has normal parts for the cloud to clear"
    assert set(hmi.corrections) == cloud_normal, "a correction exactly where the cloud disagreed"
    for _, message in hmi.corrections.values():
        assert message["previous_is_anomalous"] is True and message["is_anomalous"] is False
        assert message["judged_by"] == "cloud" and message["batch_id"]
    assert {m["judged_by"] for _, m in hmi.results.values()} == {"edge"}, "one result message each, the edge's"
    assert hmi.statuses[-1]["corrected"] == len(cloud_normal) or any(
        s.get("corrected") == len(cloud_normal) for s in hmi.statuses)
    assert hmi.duplicates == 0
    _validate(hmi)


def _cloud_verdict(cloud: CloudFixture, image_id: str) -> bool:
    import json

    key = next(k for k in result_keys(cloud) if k.endswith(f"{image_id}.json"))
    body = cloud.client("s3").get_object(Bucket=cloud.outputs.final_bucket, Key=key)["Body"].read()
    return bool(json.loads(body)["result"]["IsAnomalous"])


def test_missing_local_model_falls_back_to_the_cloud_and_recovers(local_cloud: CloudFixture, mqtt_broker: Any,
                                                                  hmi: Subscriber, tmp_path: Path,
                                                                  fitted_model: Path) -> None:
    model = tmp_path / "models" / "detector.npz"  # not deployed yet
    frames = generate(tmp_path / "camera", count=8, size=128, seed=63, anomaly_rate=0.25)
    edge = Edge(_edge_config(tmp_path, local_cloud, mqtt_broker.port, mode="edge", model=str(model)),
                tmp_path / "edge.log")
    try:
        _drop(tmp_path, frames[:4])
        wait_for(lambda: any(s.get("judging") == "cloud" for s in hmi.statuses), 60,
                  "the status to say the cloud judges while the model is missing")
        fallback = next(s for s in hmi.statuses if s.get("judging") == "cloud")
        assert "cannot be read" in fallback["detector_problem"] and str(model) in fallback["detector_problem"]
        coded = dict(zip(fallback["alarm_codes"], fallback["alarms"], strict=True))
        assert "local detector unavailable" in coded[30], "the code a PLC reads (docs/plant-floor.md)"
        wait_for(lambda: len(hmi.results) >= 4, 90, "the first images judged by the cloud")
        model.parent.mkdir()
        shutil.copy(fitted_model, model)  # the deployment arrives; serve loads it without a restart
        wait_for(lambda: hmi.statuses[-1].get("judging") == "edge", 60, "the status to say the edge judges again")
        _drop(tmp_path, frames[4:])
        wait_for(lambda: len(hmi.results) >= len(frames), 60, "the later images judged at the edge")
    finally:
        assert edge.stop() == 0
    by_name = {m["file_name"]: m["judged_by"] for _, m in hmi.results.values()}
    assert {by_name[f.path.name] for f in frames[:4]} == {"cloud"}
    assert {by_name[f.path.name] for f in frames[4:]} == {"edge"}
    assert len(result_keys(local_cloud)) == 4 and hmi.duplicates == 0
    assert not hmi.statuses[-1]["alarms"] or all("local detector" not in a for a in hmi.statuses[-1]["alarms"])
    _validate(hmi)


def test_model_fetched_from_s3_once_and_served(local_cloud: CloudFixture, tmp_path: Path, fitted_model: Path) -> None:
    from batchsight.config import config_from_dict
    from batchsight.detector_server import DetectorServer
    from batchsight.local_detector import DetectorNotListening, LocalDetector

    s3 = local_cloud.client("s3")
    bucket = local_cloud.outputs.source_bucket
    s3.upload_file(str(fitted_model), bucket, "models/line-7/detector-v3.npz")
    port = free_port()
    config = config_from_dict({
        "drop_folder": str(tmp_path / "drop"), "work_folder": str(tmp_path / "work"),
        "aws": {"source_bucket": bucket, "final_bucket": "f", "queue_url": "q", "state_machine_arn": "a"},
        "inference": {"mode": "edge", "model": f"s3://{bucket}/models/line-7/detector-v3.npz",
                      "endpoint": f"http://127.0.0.1:{port}"}})
    config.work_folder.mkdir(parents=True)
    server = DetectorServer(config, s3=s3)
    try:
        _until_started(server)  # fetched on the server's worker thread, then started
        fetched = config.models_folder / "detector-v3.npz"
        assert fetched.read_bytes() == fitted_model.read_bytes()
        detector = LocalDetector(config.inference.endpoint, timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                detector.check()
                break
            except DetectorNotListening:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert str(fetched) in " ".join(server.process.args)
    finally:
        server.stop()
    elsewhere = replace(config, inference=replace(config.inference, model=f"s3://{bucket}/models/none.npz"))
    missing = DetectorServer(elsewhere, s3=s3)
    try:
        assert "does not exist" in _until_started(missing)
    finally:
        missing.stop()


def _until_started(server: Any) -> str:
    """Ask the server to run its model until it has started it (""), or says why it cannot."""
    deadline = time.monotonic() + 30
    while (problem := server.ensure_running()) == "" and server.process is None:
        assert time.monotonic() < deadline, "the model was never prepared"
        time.sleep(0.05)
    return problem


def test_an_answered_edge_alert_takes_its_image_to_the_final_bucket_with_its_label(
        local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber, tmp_path: Path, fitted_model: Path) -> None:
    import json

    from batchsight_tools.dataset.sources import feedback

    frames = generate(tmp_path / "camera", count=6, size=128, seed=64, anomaly_rate=0.5)
    edge = Edge(_edge_config(tmp_path, local_cloud, mqtt_broker.port, mode="edge", model=str(fitted_model)),
                tmp_path / "edge.log")
    operator = Operator(mqtt_broker.port)
    s3, final = local_cloud.client("s3"), local_cloud.outputs.final_bucket
    try:
        _drop(tmp_path, frames)
        wait_for(lambda: len(hmi.results) >= len(frames) and hmi.alerts, 60, "the edge's verdicts and an alert")
        alert = next(iter(hmi.alerts))
        normal = next(i for i, (_, m) in hmi.results.items() if not m["is_anomalous"])
        operator.answer(alert, "false_alarm", label="glare")
        operator.answer(normal, "confirmed")  # not an alert: its file went with its result
        wait_for(lambda: len(operator.replies) >= 2, 30, "the two replies")
        wait_for(lambda: feedback(s3, final, "test-site", "line-7").labels, 30, "the label in the final bucket")
    finally:
        operator.close()
        assert edge.stop() == 0
    replies = {r["image_id"]: r for r in operator.replies}
    assert replies[alert]["ok"] is True
    assert replies[normal]["ok"] is False and "no longer on this gateway" in replies[normal]["error"]
    [label] = feedback(s3, final, "test-site", "line-7").labels
    assert (label.image_id, label.anomalous, label.extra.get("operator-label")) == (alert, False, "glare")
    frame = next(f.path for f in frames if f.path.name == hmi.alerts[alert][1]["file_name"])
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=final).get("Contents", []))
    assert len(keys) == 2 and keys[0].endswith(f"/{alert}.label.manifest"), keys
    image_key = keys[1]
    assert image_key.rsplit("/", 1)[1] in (f"{alert}.jpg", f"{alert}.png"), \
        "one image, the answered one, and its label; no result document (the cloud judged nothing)"
    assert s3.get_object(Bucket=final, Key=image_key)["Body"].read() == frame.read_bytes()
    line = json.loads(s3.get_object(Bucket=final, Key=keys[0])["Body"].read())
    assert line["source-ref"] == f"s3://{final}/{image_key}"
