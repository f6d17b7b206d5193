"""A model swap in the real component process, under a stream of images: packages in the local
cloud's model bucket (moto) or in local folders, SIGHUP to re-read the configuration file (off
Greengrass; on a device the same update arrives over IPC), mosquitto carrying what a PLC reads.

No image lost, none judged twice, every result names the version that judged it; a damaged
package is refused with an alarm while the current model goes on judging; the shadow's
agreement figures arrive on MQTT and continue across a restart.
"""
from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from batchsight_detector import DetectorModel
from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.synth import generate
from tests.edge_process import Edge, ShadowHmi, edit_config, listen, result_keys, start_camera, write_config
from tests.gateway.model_support import folder_package, s3_package
from tests.support import CloudFixture, load_schema, wait_for

pytestmark = pytest.mark.integration


def _config(tmp: Path, cloud: CloudFixture, broker_port: int, **inference: Any) -> Path:
    path = write_config(tmp, cloud, broker_port)
    data = yaml.safe_load(path.read_text())
    data["inference"] = {"endpoint": f"http://127.0.0.1:{free_port()}", "retry_seconds": 1.0, **inference}
    path.write_text(yaml.safe_dump(data))
    (tmp / "drop").mkdir(exist_ok=True)
    return path


def _validate(hmi: Any) -> None:
    for _, message in [*hmi.results.values(), *hmi.alerts.values()]:
        jsonschema.validate(message, load_schema("mqtt_result"))
    for message in hmi.statuses:
        jsonschema.validate(message, load_schema("mqtt_status"))


def test_a_new_package_is_swapped_in_under_a_stream_of_images(local_cloud: CloudFixture, mqtt_broker: Any,
                                                              hmi: Any, tmp_path: Path, fitted_model: Path) -> None:
    s3, bucket = local_cloud.client("s3"), local_cloud.outputs.extra["ModelBucketName"]
    name = f"swap-{uuid.uuid4().hex[:8]}"
    v1 = s3_package(s3, bucket, name, "1", fitted_model)
    v2 = s3_package(s3, bucket, name, "2", fitted_model, published=("1",))
    v3 = s3_package(s3, bucket, name, "3", fitted_model, published=("1", "2"), tamper=True)
    frames = generate(tmp_path / "camera", count=30, size=128, seed=71, anomaly_rate=0.3)
    cloud_before = result_keys(local_cloud)
    config = _config(tmp_path, local_cloud, mqtt_broker.port, mode="edge", model=v1)
    edge = Edge(config, tmp_path / "edge.log")
    try:
        camera = start_camera(frames[:24], tmp_path / "drop", lambda: random.uniform(0.1, 0.4))
        wait_for(lambda: len(hmi.results) >= 6, 90, "the first images judged by version 1")
        edit_config(config, inference={"model": v2})
        edge.reload()  # the camera goes on: images arrive while version 2 is fetched, checked and started
        camera.join()
        wait_for(lambda: len(hmi.results) >= 24, 90, "every image of the stream judged")
        wait_for(lambda: any(s.get("model_version") == "2" for s in hmi.statuses), 30, "the status to name v2")
        edit_config(config, inference={"model": v3})  # a damaged package: refused, version 2 goes on
        edge.reload()
        wait_for(lambda: any("not used" in a and f"{name} version 3 refused" in a
                             for s in hmi.statuses for a in s.get("alarms", [])), 60, "the alarm for version 3")
        start_camera(frames[24:], tmp_path / "drop", lambda: 0.05).join()
        wait_for(lambda: len(hmi.results) >= len(frames), 60, "the images after the refusal judged")
    finally:
        assert edge.stop() == 0
    results = sorted((m["detected_at"], m["file_name"], m["model_version"]) for _, m in hmi.results.values())
    assert len(results) == len(frames) and hmi.duplicates == 0, "no image lost, none judged twice"
    assert {m["file_name"] for _, m in hmi.results.values()} == {f.path.name for f in frames}
    versions = [version for _, _, version in results]
    switch = versions.index("2")
    assert set(versions[:switch]) == {"1"} and set(versions[switch:]) == {"2"}, "one switch, then version 2 only"
    assert 6 <= switch < 24, "results before and after the swap"
    assert {m["model"] for _, m in hmi.results.values()} == {name}
    assert {m["model_version"] for f, m in hmi.results.values() if m["file_name"] in
            {f.path.name for f in frames[24:]}} == {"2"}, "the refused version 3 judged nothing"
    log = (tmp_path / "edge.log").read_text()
    assert "SIGHUP: reading the configuration file again" in log and "model switched" in log
    assert result_keys(local_cloud) == cloud_before, "the cloud judged nothing"
    assert list((tmp_path / "work" / "spool").iterdir()) == []
    _validate(hmi)


def test_the_shadow_is_compared_on_every_image_and_its_figures_survive_a_restart(
        local_cloud: CloudFixture, mqtt_broker: Any, tmp_path: Path, fitted_model: Path) -> None:
    jumpy = DetectorModel.load(fitted_model)
    jumpy.threshold = -1.0  # the candidate calls every part anomalous
    jumpy.save(tmp_path / "jumpy.npz")
    current = folder_package(tmp_path / "artifacts" / "castings" / "1", "castings", "1", fitted_model)
    candidate = folder_package(tmp_path / "artifacts" / "castings" / "2", "castings", "2", tmp_path / "jumpy.npz")
    frames = generate(tmp_path / "camera", count=12, size=128, seed=72, anomaly_rate=0.25)
    config = _config(tmp_path, local_cloud, mqtt_broker.port, mode="edge-first", model=str(current),
                     shadow_model=str(candidate), shadow_report_every=4, uncertain_low=0.0, uncertain_high=0.0)
    hmi = listen(mqtt_broker.port, shadow=True)
    assert isinstance(hmi, ShadowHmi)
    try:
        edge = Edge(config, tmp_path / "edge.log")
        try:
            start_camera(frames[:8], tmp_path / "drop", lambda: 0.05).join()
            wait_for(lambda: len(hmi.results) >= 8, 90, "the first eight judged")
            wait_for(lambda: any(s["compared"] == 8 for s in hmi.shadows), 90, "the shadow figures of eight")
        finally:
            assert edge.stop() == 0
        edge = Edge(config, tmp_path / "edge.log")  # a restart: the figures go on from the journal
        try:
            start_camera(frames[8:], tmp_path / "drop", lambda: 0.05).join()
            wait_for(lambda: any(s["compared"] == 12 for s in hmi.shadows), 90, "the figures after the restart")
        finally:
            assert edge.stop() == 0
    finally:
        hmi.stop()
    assert len(hmi.results) == len(frames) and hmi.duplicates == 0
    assert {(m["model"], m["model_version"]) for _, m in hmi.results.values()} == {("castings", "1")}, \
        "the shadow's verdicts are never published"
    assert set(hmi.alerts) == {i for i, (_, m) in hmi.results.items() if m["is_anomalous"]}
    normal = sum(not m["is_anomalous"] for _, m in hmi.results.values())
    last = max(hmi.shadows, key=lambda s: s["compared"])
    for figures in hmi.shadows:
        jsonschema.validate(figures, load_schema("mqtt_shadow"))
    assert (last["model_version"], last["shadow_model_version"]) == ("1", "2")
    assert (last["compared"], last["agreements"], last["normal_to_anomalous"], last["anomalous_to_normal"]) == (
        12, 12 - normal, normal, 0)
    assert any(s.get("shadow_model_version") == "2" and s.get("model_version") == "1" for s in hmi.statuses)
    _validate(hmi)
