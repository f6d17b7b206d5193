"""detect_ahead.py: the detector asked while the journal takes the image in, its answer used only once
the image is validated; a real `batchsight serve` on loopback, real journal files, real Pillow."""
from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsight.detect_ahead import ANSWERS, OFFERED, OFFERED_BYTES, DetectAhead, Offered
from batchsight.images import CheckedImage
from batchsight.journal import ImageState, Route
from batchsight.local_detector import LocalDetector
from batchsight.model_package import ModelIdentity
from batchsight.verifier import PixelVerifier
from batchsight_detector.serve import ModelSlot, make_server
from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.synth import generate
from tests.gateway.journal_support import row
from tests.gateway.test_edge_judge import Rig
from tests.gateway.test_verifier import scrambled


class CountingSlot(ModelSlot):
    """The server's own model slot, counting the requests that reach it (/ping and /invocations)."""

    requests = 0
    port = 0

    def current(self) -> Any:
        self.requests += 1
        return super().current()


@pytest.fixture
def slot(fitted_model: Path) -> Iterator[CountingSlot]:
    slot = CountingSlot(fitted_model)
    slot.port = free_port()
    server = make_server(slot, "127.0.0.1", slot.port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield slot
    server.shutdown()
    server.server_close()


@pytest.fixture
def rig(tmp_path: Path, slot: CountingSlot) -> Iterator[Rig]:
    """The judge healthy at the edge, and ingest offering it what it inspects (as event_path.py wires it)."""
    rig = Rig(tmp_path, slot.port, mode="edge")

    def offer(checked: CheckedImage, data: bytes) -> None:
        rig.judge.offer(checked.image_id, data, checked.ext)

    rig.ingestor.on_inspected = offer
    rig.judge.step(time.monotonic())
    assert rig.judge.status() == ("edge", "")
    yield rig
    rig.close()


@pytest.fixture
def frames(tmp_path: Path) -> list[Any]:
    return generate(tmp_path / "camera", count=3, size=128, seed=7, anomaly_rate=0.5)


def received(rig: Rig, frame: Any) -> str:
    target = rig.config.drop_folder / frame.path.name
    shutil.copy(frame.path, target)
    image_id = rig.ingestor.ingest(target).image_id
    assert image_id and row(rig.journal, image_id).state is ImageState.RECEIVED
    return image_id


def validate(rig: Rig, image_ids: list[str]) -> None:
    verifier = PixelVerifier(rig.config, rig.journal)
    verifier.verify(image_ids)
    verifier.stop()


def test_the_detector_is_asked_once_before_validation_and_the_verdict_waits_for_it(
        rig: Rig, slot: CountingSlot, frames: list[Any]) -> None:
    image_ids = [received(rig, frame) for frame in frames]
    before = slot.requests
    rig.judge.step(time.monotonic())
    assert slot.requests - before == len(frames), "each image asked about ahead, while only received"
    assert all(row(rig.journal, i).state is ImageState.RECEIVED for i in image_ids)
    assert rig.messages() == [], "no verdict leaves before the image is validated"

    validate(rig, image_ids)
    rig.judge.step(time.monotonic())
    assert slot.requests - before == len(frames), "the answers kept were used, not asked again"
    assert all(row(rig.journal, i).state is ImageState.ALERTED for i in image_ids)
    results = {m["image_id"]: m for kind, m in rig.messages() if kind == "result"}
    assert set(results) == set(image_ids)
    truth = {i: f.label == "anomaly" for i, f in zip(image_ids, frames, strict=True)}
    assert sum(results[i]["is_anomalous"] == truth[i] for i in image_ids) >= len(frames) - 1


def test_an_image_the_pixel_check_refuses_is_quarantined_though_it_was_detected_ahead(
        rig: Rig, frames: list[Any]) -> None:
    image_id = received(rig, frames[0])
    rig.judge.step(time.monotonic())  # its answer is kept
    Path(row(rig.journal, image_id).path).write_bytes(scrambled(1))  # the spooled file no longer decodes
    validate(rig, [image_id])
    rig.judge.step(time.monotonic())
    assert rig.journal.get(image_id) is None, "set aside: it left the journal"
    assert any(rig.config.quarantine_folder.glob(f"*{frames[0].path.name}")), "into quarantine"
    assert rig.messages() == [], "an image that is not validated never gets a verdict out"


def test_a_detector_that_fails_ahead_sends_the_images_to_the_cloud(rig: Rig, frames: list[Any]) -> None:
    image_id = received(rig, frames[0])  # offered while the detector was healthy
    rig.judge.detector = LocalDetector(f"http://127.0.0.1:{free_port()}", timeout=2)  # now nothing listens
    rig.judge.step(time.monotonic())
    judging, problem = rig.judge.status()
    assert judging == "cloud" and "not reachable" in problem
    assert not rig.judge.offer("f" * 64, b"bytes", "jpg"), "nothing is kept while the cloud judges"
    validate(rig, [image_id])
    rig.judge.step(time.monotonic())
    assert row(rig.journal, image_id).route == Route.CLOUD.value


def test_an_answer_is_taken_only_from_the_server_and_model_that_gave_it() -> None:
    ahead = DetectAhead()
    one, other = LocalDetector("http://127.0.0.1:1", timeout=1), LocalDetector("http://127.0.0.1:1", timeout=1)
    v1, v2 = ModelIdentity("casting", "1"), ModelIdentity("casting", "2")
    answer = {"IsAnomalous": False, "Confidence": 0.9}
    for client, identity in ((one, v2), (other, v1), (one, v1)):
        ahead.keep(Offered("a" * 64, b"", "jpg"), one, v1, answer)
        assert (ahead.take("a" * 64, client, identity) == answer) is (client is one and identity == v1)
        assert ahead.take("a" * 64, one, v1) is None, "taken once, whoever asked"


def test_what_is_held_ahead_is_bounded() -> None:
    ahead = DetectAhead()
    assert all(ahead.offer(f"{n:064x}", b"x", "jpg") for n in range(OFFERED))
    assert not ahead.offer("f" * 64, b"x", "jpg"), "a backlog is judged the usual way"
    assert ahead.next() is not None and ahead.offer("f" * 64, b"x", "jpg"), "room again once one was taken"
    ahead.clear()
    assert not ahead.offer("e" * 64, bytes(OFFERED_BYTES + 1), "jpg"), "nor a huge image"
    client, answer = LocalDetector("http://127.0.0.1:1", timeout=1), {"IsAnomalous": True, "Confidence": 1.0}
    for n in range(ANSWERS + 5):
        ahead.keep(Offered(f"{n:064x}", b"", "jpg"), client, None, answer)
    assert ahead.take(f"{0:064x}", client, None) is None, "the oldest answers went first"
    assert ahead.take(f"{ANSWERS + 4:064x}", client, None) == answer
