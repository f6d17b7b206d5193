"""Edge inference modes against a real `batchsight serve` (HTTP on loopback), real journal files.

What goes out is read from the outbox (the MQTT messages in the journal file); the
end-to-end tests (tests/integration/test_edge_modes.py) add the broker, the cloud and the
component process.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsight.alerter import Alerter
from batchsight.config import ConfigError, config_from_dict
from batchsight.detector_server import DetectorServer
from batchsight.edge_judge import EdgeJudge, anomaly_probability, audited
from batchsight.ingest import Ingestor
from batchsight.journal import ImageState, Journal, Route
from batchsight.local_detector import LocalDetector
from batchsight.publishers.outbox import Outbox
from batchsight.verifier import PixelVerifier
from batchsight_detector.serve import ModelSlot, make_server
from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.synth import generate
from tests.gateway.journal_support import row
from tests.gateway.test_outbox import FakeBroker

AWS = {"source_bucket": "src", "final_bucket": "final", "queue_url": "https://q", "state_machine_arn": "arn:sm"}


class Serve:
    """`batchsight serve` in a thread, on a given port, stoppable and restartable."""

    def __init__(self, model: Path, port: int) -> None:
        self.model, self.port = model, port
        self.server = make_server(ModelSlot(model), "127.0.0.1", port)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Rig:
    def __init__(self, tmp: Path, port: int, **inference: Any) -> None:
        self.config = config_from_dict({
            "drop_folder": str(tmp / "drop"), "work_folder": str(tmp / "work"), "aws": AWS,
            "ingest": {"min_side": 64},
            "inference": {"endpoint": f"http://127.0.0.1:{port}", "retry_seconds": 1.0, **inference}})
        self.config.drop_folder.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.config.journal_path)
        self.alerter = Alerter(self.config, self.journal, FakeBroker())  # hand_off only queues
        self.server = DetectorServer(self.config, s3=None)
        self.judge = EdgeJudge(self.config, self.journal, self.alerter, server=self.server,
                               detector=LocalDetector(self.config.inference.endpoint, timeout=5))
        self.ingestor = Ingestor(self.config, self.journal)

    def drop(self, frames: list[Any]) -> list[str]:
        ids = []
        for frame in frames:
            target = self.config.drop_folder / frame.path.name
            shutil.copy(frame.path, target)
            outcome = self.ingestor.ingest(target)
            assert outcome.image_id, outcome
            ids.append(outcome.image_id)
        verifier = PixelVerifier(self.config, self.journal)
        verifier.verify(ids)
        verifier.stop()
        return ids

    def messages(self) -> list[tuple[str, dict[str, Any]]]:
        return [(m.topic.rsplit("/inspection/", 1)[1], json.loads(m.body))
                for m in Outbox(self.journal).messages(1000)]

    def close(self) -> None:
        self.server.stop()
        self.journal.close()


@pytest.fixture
def frames(tmp_path: Path) -> list[Any]:
    return generate(tmp_path / "camera", count=8, size=128, seed=5, anomaly_rate=0.5)


@pytest.fixture
def serve(fitted_model: Path) -> Iterator[Serve]:
    server = Serve(fitted_model, free_port())
    yield server
    server.stop()


def test_edge_mode_judges_locally_and_never_batches(tmp_path: Path, serve: Serve, frames: list[Any]) -> None:
    rig = Rig(tmp_path, serve.port, mode="edge")
    try:
        ids = rig.drop(frames)
        assert rig.journal.waiting()[0] == 0, "images wait for the detector, not for a batch"
        rig.judge.step(time.time())
        assert rig.judge.status() == ("edge", "")
        for image_id in ids:
            image = row(rig.journal, image_id)
            assert image.state is ImageState.ALERTED and image.route == Route.EDGE.value
        assert rig.journal.waiting()[0] == 0 and rig.journal.cut_batch("b", max_images=100) == 0
        assert rig.alerter.hand_off() == 0, "each verdict queued its messages in its own transaction"
        sent = rig.messages()
        results = [m for kind, m in sent if kind == "result"]
        alerts = {m["image_id"] for kind, m in sent if kind == "alert"}
        assert len(results) == len(frames)
        assert all(m["judged_by"] == "edge" and m["result_key"] == "" for m in results)
        truth = {i: f.label == "anomaly" for i, f in zip(ids, frames, strict=False)}
        assert alerts == {m["image_id"] for m in results if m["is_anomalous"]}
        assert sum(m["is_anomalous"] == truth[m["image_id"]] for m in results) >= len(frames) - 1
        assert rig.journal.judgements()["judged_at_edge"] == len(frames)
    finally:
        rig.close()


def test_edge_first_publishes_at_once_and_the_cloud_corrects(tmp_path: Path, serve: Serve,
                                                              frames: list[Any]) -> None:
    rig = Rig(tmp_path, serve.port, mode="edge-first", uncertain_low=0.0, uncertain_high=1.0)
    try:
        ids = rig.drop(frames[:4])
        rig.judge.step(time.time())
        provisional = {m["image_id"]: m for kind, m in rig.messages() if kind == "result"}
        assert set(provisional) == set(ids), "every local verdict goes out before the cloud's"
        assert rig.journal.waiting()[0] == 4, "and every image in the band also goes to the cloud"
        assert rig.journal.cut_batch("b1", max_images=100) == 4
        # the cloud's verdicts (as results.py stores them): two agree, two overrule the edge
        for n, image_id in enumerate(ids):
            local = provisional[image_id]["is_anomalous"]
            cloud = local if n < 2 else not local
            for state in (ImageState.UPLOADED, ImageState.ENQUEUED, ImageState.SUBMITTED):
                rig.journal.advance([image_id], state)
            rig.journal.advance([image_id], ImageState.RESULT_STORED, is_anomalous=int(cloud), confidence=0.9,
                                result_json=json.dumps({"v": 1, "image_id": image_id, "model": {"name": "cloud"},
                                                        "result": {"IsAnomalous": cloud, "Confidence": 0.9}}))
        before = len(rig.messages())
        rig.alerter.hand_off()
        after = rig.messages()[before:]
        corrections = [m for kind, m in after if kind == "correction"]
        assert {m["image_id"] for m in corrections} == set(ids[2:])
        for m in corrections:
            assert m["previous_is_anomalous"] == provisional[m["image_id"]]["is_anomalous"] != m["is_anomalous"]
        new_alerts = {m["image_id"] for kind, m in after if kind == "alert"}
        assert new_alerts == {m["image_id"] for m in corrections if m["is_anomalous"]}
        assert not [kind for kind, _ in after if kind == "result"], "no second result message"
        assert all(row(rig.journal, i).state is ImageState.ALERTED for i in ids)
        assert rig.journal.judgements() == {"judged_at_edge": 0, "audited": 4, "corrected": 2}
    finally:
        rig.close()


def test_edge_first_sends_only_the_uncertain_band_and_the_audit_sample(tmp_path: Path, serve: Serve,
                                                                       frames: list[Any]) -> None:
    rig = Rig(tmp_path, serve.port, mode="edge-first", uncertain_low=0.4, uncertain_high=0.6,
              audit_fraction=0.5)
    try:
        ids = rig.drop(frames)
        rig.judge.step(time.time())
        for image_id in ids:
            image = row(rig.journal, image_id)
            verdict = json.loads(image.local_json or image.result_json or "{}")["result"]
            expected = 0.4 <= anomaly_probability(verdict) <= 0.6 or audited(image_id, 0.5)
            assert (image.route == Route.AUDIT.value) == expected, image_id
    finally:
        rig.close()


def test_unreachable_detector_falls_back_to_the_cloud_and_recovers(tmp_path: Path, fitted_model: Path,
                                                                   frames: list[Any]) -> None:
    port = free_port()
    rig = Rig(tmp_path, port, mode="edge")
    try:
        first = rig.drop(frames[:3])
        start = time.monotonic()  # the judge's clock, handed in: the retry is timed from it, not from how
        assert rig.judge.step(start) is True  # long a loaded machine takes to start the detector
        judging, problem = rig.judge.status()
        assert judging == "cloud" and "not reachable" in problem
        assert all(row(rig.journal, i).route == Route.CLOUD.value for i in first)
        assert rig.journal.waiting()[0] == 3, "the cloud batch takes them"
        server = Serve(fitted_model, port)  # the detector comes back
        try:
            second = rig.drop(frames[3:5])
            rig.judge.step(start + 0.5)
            assert rig.judge.status()[0] == "cloud", "not before retry_seconds"
            assert all(row(rig.journal, i).route == Route.CLOUD.value for i in second)
            third = rig.drop(frames[5:7])
            assert rig.judge.step(start + 1.1) is True
            assert rig.judge.status() == ("edge", "")
            assert all(row(rig.journal, i).route == Route.EDGE.value for i in third)
        finally:
            server.stop()
    finally:
        rig.close()


def test_a_missing_model_file_is_reported_and_fixed_by_providing_it(tmp_path: Path, fitted_model: Path,
                                                                   frames: list[Any]) -> None:
    model = tmp_path / "models" / "detector.npz"
    server = Serve(model, free_port())
    rig = Rig(tmp_path, server.port, mode="edge")
    try:
        rig.drop(frames[:2])
        rig.judge.step(time.time())
        judging, problem = rig.judge.status()
        assert judging == "cloud" and f"model file {model} cannot be read" in problem
        model.parent.mkdir()
        shutil.copy(fitted_model, model)  # a deployment delivers it; serve loads it without a restart
        time.sleep(1.1)
        rig.judge.step(time.time())
        assert rig.judge.status() == ("edge", "")
    finally:
        rig.close()
        server.stop()


def test_an_image_the_detector_refuses_goes_to_the_cloud_alone(tmp_path: Path, serve: Serve,
                                                              frames: list[Any]) -> None:
    rig = Rig(tmp_path, serve.port, mode="edge")
    try:
        ids = rig.drop(frames[:3])
        Path(row(rig.journal, ids[0]).path).write_bytes(b"\x89PNG not an image any more")
        rig.judge.step(time.time())
        assert row(rig.journal, ids[0]).route == Route.CLOUD.value
        assert [row(rig.journal, i).route for i in ids[1:]] == [Route.EDGE.value] * 2
        assert rig.judge.status() == ("edge", ""), "one bad image does not make the detector unhealthy"
    finally:
        rig.close()


def test_the_component_runs_the_detector_and_restarts_it_after_a_crash(tmp_path: Path, fitted_model: Path,
                                                                      frames: list[Any]) -> None:
    rig = Rig(tmp_path, free_port(), mode="edge", model=str(fitted_model))
    try:
        rig.drop(frames[:2])
        deadline = time.monotonic() + 30
        while rig.judge.status()[0] != "edge":
            rig.judge.step(time.time())
            assert rig.judge.status()[0] in ("starting", "edge", "cloud")
            assert time.monotonic() < deadline, rig.judge.status()
            time.sleep(0.2)
        assert rig.journal.judgements()["judged_at_edge"] >= 1
        process = rig.server.process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)  # the detector process dies
        process.wait()
        rig.drop(frames[2:4])
        rig.judge.step(time.time())
        assert rig.judge.status()[0] == "cloud", "its death is noticed at the next image"
        time.sleep(1.1)
        deadline = time.monotonic() + 30
        while rig.judge.status()[0] != "edge":  # restarted at the next check, then healthy again
            rig.judge.step(time.time())
            assert time.monotonic() < deadline, rig.judge.status()
            time.sleep(0.2)
        assert "serving" in (tmp_path / "work" / "detector.log").read_text()
    finally:
        rig.close()
    assert rig.server.process is None or rig.server.process.poll() is not None, \
        "stopping the component stops its detector"


def test_cloud_mode_routes_everything_to_the_cloud(tmp_path: Path, frames: list[Any]) -> None:
    rig = Rig(tmp_path, free_port(), mode="cloud")
    try:
        ids = rig.drop(frames[:2])
        assert all(row(rig.journal, i).route == Route.CLOUD.value for i in ids)
        assert rig.judge.step(time.time()) is False and rig.judge.status() == ("cloud", "")
    finally:
        rig.close()


def test_cloud_mode_sends_images_an_earlier_edge_run_left_waiting(tmp_path: Path, frames: list[Any]) -> None:
    edge_run = Rig(tmp_path, free_port(), mode="edge")
    ids = edge_run.drop(frames[:2])  # journaled, then the component stopped before judging them
    edge_run.close()
    rig = Rig(tmp_path, free_port(), mode="cloud")
    try:
        assert rig.journal.waiting()[0] == 0
        rig.judge.step(time.time())
        assert all(row(rig.journal, i).route == Route.CLOUD.value for i in ids)
        assert rig.journal.waiting()[0] == 2
    finally:
        rig.close()


@pytest.mark.parametrize("inference, error", [
    ({"mode": "edge-only"}, "inference.mode"),
    ({"endpoint": "127.0.0.1:8080"}, "inference.endpoint"),
    ({"endpoint": "http://127.0.0.1:port"}, "inference.endpoint"),
    ({"model": "relative/model.npz"}, "inference.model"),
    ({"model": "/m.npz", "endpoint": "http://10.0.0.5:8080"}, "inference.endpoint"),
    ({"uncertain_low": 0.8, "uncertain_high": 0.2}, "inference.uncertain_low"),
    ({"audit_fraction": 1.5}, "inference.audit_fraction"),
    ({"timeout_seconds": 0}, "inference.timeout_seconds"),
    ({"retry_seconds": "soon"}, "inference.retry_seconds"),
])
def test_inference_settings_are_checked(tmp_path: Path, inference: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace(".", r"\.")):
        config_from_dict({"drop_folder": str(tmp_path / "d"), "work_folder": str(tmp_path / "w"), "aws": AWS,
                          "inference": inference})


def test_anomaly_probability_and_audit_sample() -> None:
    assert anomaly_probability({"IsAnomalous": True, "Confidence": 0.8}) == 0.8
    assert anomaly_probability({"IsAnomalous": False, "Confidence": 0.8}) == pytest.approx(0.2)
    ids = [f"{n:08x}" + "0" * 56 for n in range(0, 16 ** 8, 16 ** 8 // 1000)]
    assert sum(audited(i, 0.1) for i in ids) == pytest.approx(100, abs=2)
    assert not any(audited(i, 0.0) for i in ids) and all(audited(i, 1.0) for i in ids)
