"""Swapping the edge model while images arrive, refusing a bad one, and the shadow beside it:
real `batchsight serve` processes started by the component's DetectorServer, packages in
local folders (as a Greengrass artifact unpacks them), the real journal; what goes out is read
from the outbox. The whole component process with a broker and S3: tests/integration/test_model_swap.py.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from batchsight.journal import ImageState
from batchsight.journal_shadow import ShadowPair
from batchsight.shadow import ShadowReporter
from batchsight_detector import DetectorModel
from batchsight_tools.localcloud.stack import free_port
from batchsight_tools.synth import generate
from tests.gateway.journal_support import row
from tests.gateway.model_support import folder_package
from tests.gateway.test_edge_judge import Rig
from tests.gateway.test_outbox import FakeBroker
from tests.support import load_schema


class SwapRig(Rig):
    def reconfigure(self, **inference: Any) -> None:
        """A configuration update, as Component.apply_config hands it to the parts."""
        self.config = replace(self.config, inference=replace(self.config.inference, **inference))
        for part in (self.judge, self.server, self.alerter):
            part.reconfigure(self.config)

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = 45) -> None:
        """Run the judge's steps (the main loop's) until ``predicate()``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.judge.status()}"
            self.judge.step(time.monotonic())
            time.sleep(0.05)

    def judged_by(self, ids: list[str]) -> list[str]:
        """The version that judged each image, from its recorded verdict."""
        versions = []
        for image_id in ids:
            image = row(self.journal, image_id)
            assert image.state is ImageState.ALERTED, image
            versions.append(json.loads(image.result_json or "{}")["model"]["version"])
        return versions


@pytest.fixture
def packages(tmp_path: Path, fitted_model: Path) -> dict[str, Path]:
    """Versions 1 and 2 of the model, a damaged 3, an unloadable 4 and a jumpy candidate 5 (its
    threshold far too low: it calls everything anomalous)."""
    jumpy = DetectorModel.load(fitted_model)
    jumpy.threshold = -1.0
    jumpy.save(tmp_path / "jumpy.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a model at all, but exactly what package.json says")
    root = tmp_path / "artifacts"
    return {"1": folder_package(root / "1", "castings", "1", fitted_model),
            "2": folder_package(root / "2", "castings", "2", fitted_model),
            "3": folder_package(root / "3", "castings", "3", fitted_model, tamper=True),
            "4": folder_package(root / "4", "castings", "4", garbage),
            "5": folder_package(root / "5", "castings", "5", tmp_path / "jumpy.npz")}


@pytest.fixture
def frames(tmp_path: Path) -> list[Any]:
    return generate(tmp_path / "camera", count=16, size=128, seed=7, anomaly_rate=0.3)


def test_a_new_package_is_swapped_in_while_images_arrive_each_judged_once(tmp_path: Path, packages: dict[str, Path],
                                                                         frames: list[Any]) -> None:
    rig = SwapRig(tmp_path, free_port(), mode="edge", model=str(packages["1"]))
    try:
        before = rig.drop(frames[:4])
        rig.until(lambda: all(row(rig.journal, i).state is ImageState.ALERTED for i in before), "v1 judging")
        old = rig.server.process
        assert rig.server.models()["model_version"] == "1"
        rig.reconfigure(model=str(packages["2"]))
        during = rig.drop(frames[4:8])  # arrive while version 2 is prepared: version 1 judges them
        rig.judge.step(time.monotonic())
        assert rig.judged_by(during) == ["1"] * 4, "the current model goes on judging while the next one starts"
        rig.until(lambda: rig.server.models()["model_version"] == "2", "the switch to version 2")
        after = rig.drop(frames[8:12])
        rig.until(lambda: all(row(rig.journal, i).state is ImageState.ALERTED for i in after), "v2 judging")
        assert rig.judged_by(before + during) == ["1"] * 8 and rig.judged_by(after) == ["2"] * 4
        assert old.poll() is not None, "the old server is stopped after the switch"
        assert rig.server.process.poll() is None and rig.server.incoming is None
        assert rig.server.current.port != rig.config.inference.endpoint.rsplit(":", 1)[1]
        assert rig.server.alarms() == []
        rig.alerter.hand_off()
        results = [m for kind, m in rig.messages() if kind == "result"]
        assert sorted(m["image_id"] for m in results) == sorted(before + during + after), "one result each"
        assert {(m["model"], m["model_version"]) for m in results if m["image_id"] in after} == {("castings", "2")}
        for message in results:
            jsonschema.validate(message, load_schema("mqtt_result"))
    finally:
        rig.close()
    assert rig.server.process is None or rig.server.process.poll() is not None


@pytest.mark.parametrize("bad, why", [("3", "castings version 3 refused: its model.npz has SHA-256"),
                                      ("4", "the detector cannot load castings version 4: publish it again")])
def test_a_bad_package_is_refused_and_the_current_model_goes_on_judging(tmp_path: Path, packages: dict[str, Path],
                                                                        frames: list[Any], bad: str, why: str) -> None:
    rig = SwapRig(tmp_path, free_port(), mode="edge", model=str(packages["2"]))
    try:
        first = rig.drop(frames[:2])
        rig.until(lambda: all(row(rig.journal, i).state is ImageState.ALERTED for i in first), "v2 judging")
        rig.reconfigure(model=str(packages[bad]))
        rig.until(lambda: rig.server.alarms(), "the refusal")
        [alarm] = rig.server.alarms()
        assert alarm.startswith("new inference.model not used, castings version 2 goes on judging"), alarm
        assert why in alarm, alarm
        later = rig.drop(frames[2:6])
        rig.until(lambda: all(row(rig.journal, i).state is ImageState.ALERTED for i in later), "still judging")
        assert rig.judged_by(later) == ["2"] * 4 and rig.judge.status() == ("edge", "")
        assert rig.server.incoming is not None and rig.server.incoming.refused
        assert rig.server.incoming.process is None, "no server runs on a refused model"
        rig.reconfigure(model=str(packages["1"]))  # the next deployment fixes it: the alarm goes
        rig.until(lambda: rig.server.models()["model_version"] == "1", "the switch to version 1")
        assert rig.server.alarms() == []
    finally:
        rig.close()


def test_a_damaged_package_at_start_sends_images_to_the_cloud_and_says_what_to_do(tmp_path: Path,
                                                                                packages: dict[str, Path],
                                                                                frames: list[Any]) -> None:
    rig = SwapRig(tmp_path, free_port(), mode="edge", model=str(packages["3"]))
    try:
        ids = rig.drop(frames[:2])
        rig.until(lambda: rig.judge.status()[0] == "cloud", "the fallback")
        judging, problem = rig.judge.status()
        assert problem.startswith("model castings version 3 refused: its model.npz has SHA-256")
        assert "publish the version again (batchsight model publish) and deploy it" in problem
        assert rig.journal.waiting()[0] == 2 and all(row(rig.journal, i).route == "cloud" for i in ids)
    finally:
        rig.close()


def test_the_shadow_judges_every_image_beside_the_model_and_is_never_published(tmp_path: Path,
                                                                               packages: dict[str, Path],
                                                                               frames: list[Any]) -> None:
    rig = SwapRig(tmp_path, free_port(), mode="edge-first", model=str(packages["1"]), shadow_model=str(packages["5"]),
                  uncertain_low=0.0, uncertain_high=0.0, shadow_report_every=5)
    broker = FakeBroker()
    reporter = ShadowReporter(rig.config, rig.journal, broker)
    try:
        rig.until(lambda: rig.server.shadow_client() is not None and rig.judge.status()[0] == "edge", "both ready")
        assert rig.server.models() == {"model": "castings", "model_version": "1", "shadow_model": "castings",
                                       "shadow_model_version": "5"}
        ids = rig.drop(frames[:10])
        rig.until(lambda: all(row(rig.journal, i).state is ImageState.ALERTED for i in ids), "all judged")
        rig.alerter.hand_off()
        sent = rig.messages()
        results = {m["image_id"]: m for kind, m in sent if kind == "result"}
        assert set(results) == set(ids) and len([k for k, _ in sent if k == "result"]) == len(ids)
        assert {m["model_version"] for m in results.values()} == {"1"}, "only the current model's verdicts go out"
        assert {m["image_id"] for kind, m in sent if kind == "alert"} == {
            i for i, m in results.items() if m["is_anomalous"]}
        [tally] = rig.journal.shadow_tallies()
        normal = sum(not m["is_anomalous"] for m in results.values())
        assert tally.pair == ShadowPair("castings", "1", "castings", "5")
        assert (tally.compared, tally.agreements, tally.normal_to_anomalous, tally.anomalous_to_normal) == (
            10, 10 - normal, normal, 0), "the jumpy candidate calls every normal part anomalous"
        assert reporter.publish_due() == 1
        [(topic, body, retain)] = broker.sent
        figures = json.loads(body)
        jsonschema.validate(figures, load_schema("mqtt_shadow"))
        assert topic.endswith("/inspection/shadow") and retain
        assert (figures["compared"], figures["normal_to_anomalous"], figures["shadow_model_version"]) == (
            10, normal, "5")
        assert reporter.publish_due() == 0, "nothing new to say"
        shadow_pid = rig.server.shadow.process.pid
        rig.reconfigure(model=str(packages["5"]), shadow_model="")  # promoted
        rig.until(lambda: rig.server.models()["model_version"] == "5", "the promotion")
        assert rig.server.process.pid == shadow_pid, "the shadow's running server became the current one"
        assert rig.server.models()["shadow_model"] == "" and rig.server.shadow is None
    finally:
        rig.close()


def test_the_shadow_figures_survive_a_restart_and_count_each_image_once(tmp_path: Path) -> None:
    from batchsight.journal import Journal

    path = tmp_path / "journal.sqlite3"
    pair = ShadowPair("castings", "3", "castings", "4")
    journal = Journal(path)
    assert journal.record_shadow("a" * 64, pair, anomalous=True, shadow_anomalous=True)
    assert journal.record_shadow("b" * 64, pair, anomalous=True, shadow_anomalous=False)
    journal.close()
    journal = Journal(path)  # a restart; the image judged just before the crash is judged again
    assert not journal.record_shadow("b" * 64, pair, anomalous=True, shadow_anomalous=False)
    assert journal.record_shadow("c" * 64, pair, anomalous=False, shadow_anomalous=True)
    [tally] = journal.shadow_tallies()
    assert (tally.compared, tally.agreements, tally.anomalous_to_normal, tally.normal_to_anomalous) == (3, 1, 1, 1)
    journal.shadow_reported(pair, 3)
    assert journal.shadow_tallies(unreported=True) == []
    journal.close()


def test_a_shadow_that_dies_holds_no_image_back_and_comes_back(tmp_path: Path, packages: dict[str, Path],
                                                               frames: list[Any]) -> None:
    import os
    import signal

    rig = SwapRig(tmp_path, free_port(), mode="edge", model=str(packages["1"]), shadow_model=str(packages["2"]))
    try:
        rig.until(lambda: rig.server.shadow_client() is not None and rig.judge.status()[0] == "edge", "both ready")
        dead = rig.server.shadow.process
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait()
        ids = rig.drop(frames[:4])
        rig.judge.step(time.monotonic())
        assert all(row(rig.journal, i).state is ImageState.ALERTED for i in ids), "judged without it"
        assert rig.judged_by(ids) == ["1"] * 4 and rig.judge.status() == ("edge", "")
        [alarm] = rig.server.alarms()
        assert alarm.startswith("shadow model not running, no shadow figures: ")
        rig.until(lambda: rig.server.shadow_client() is not None, "the shadow restarted", timeout=30)
        assert rig.server.shadow.process.pid != dead.pid and rig.server.alarms() == []
        later = rig.drop(frames[4:6])
        rig.until(lambda: all(row(rig.journal, i).state is ImageState.ALERTED for i in later), "judged")
        [tally] = rig.journal.shadow_tallies()
        assert tally.compared == 2 and tally.agreements == 2, "the same model in shadow agrees with itself"
    finally:
        rig.close()
