"""The README's first command ends in `batchsight demo`: keep it working (a smaller run), honest, and tidy.

Every run here is a real ``batchsight demo`` process with ``TMPDIR`` pointing at a fresh folder,
which must be empty again when the demo has ended: the work folder, the broker's folder and
anything a library writes in the temp folder are removed. The helpers are shared by the other
``test_demo_*.py`` files.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

DEMO = [sys.executable, "-m", "batchsight_tools.cli", "demo"]
SMALL = ["--count", "16", "--train", "24", "--size", "128", "--model-startup", "1"]


def scratch(tmp_path: Path) -> Path:
    folder = tmp_path / "tmpdir"
    folder.mkdir(exist_ok=True)
    return folder


def demo_environment(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(scratch(tmp_path))}


def run_demo(tmp_path: Path, *options: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``batchsight demo OPTIONS`` with its own temp folder, which it must leave empty."""
    result = subprocess.run([*DEMO, *options], capture_output=True, text=True, timeout=timeout, cwd=tmp_path,
                            env=demo_environment(tmp_path))
    assert "Traceback" not in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]
    left = sorted(p.name for p in scratch(tmp_path).iterdir())
    assert left == [], f"the demo left {left} in its temp folder"
    return result


def passed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^demo passed in \d+ s", result.stdout, re.M)
    return result.stdout


def summary(output: str) -> dict[str, str]:
    """The markdown table (figure | value) the demo prints, as a dict."""
    return dict(re.findall(r"^\| (.+?) \| (.+?) \|$", output, re.M)[1:])  # [0] is the header row


def test_demo_prints_a_markdown_summary_headed_by_date_and_command_and_leaves_nothing_behind(
        tmp_path: Path) -> None:
    """The default backend, the template's (lambda): version 1 made with the real `batchsight dataset
    build`, `model fit`, `publish` and `deploy` in the local cloud's model bucket, every image one
    result document naming it, alerts match, nothing hosted; the summary is a table the README can
    take as is; the temp folder is empty afterwards."""
    output = passed(run_demo(tmp_path, *SMALL))
    command = "batchsight demo " + " ".join(SMALL)
    heading = f"Measured {dt.date.today().isoformat()} with `{command}` ("
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    assert lines[start + 1: start + 4] == ["", "| figure | value |", "|---|---|"]
    for step in ("batchsight model fit --dataset ",
                 "batchsight dataset build --bucket batchsight-modelbucket --name demo",
                 "batchsight model publish --bucket batchsight-modelbucket --name inspection",
                 "batchsight model deploy --bucket batchsight-modelbucket --name inspection"):
        assert re.search(rf"^    \$ {re.escape(step)}", output, re.M), f"the demo ran and printed `{step}...`"
    assert "published inspection version 1: AUROC" in output
    table = summary(output)
    assert table["images dropped"] == "16 (4 with defects)"
    assert table["result documents in the final bucket"] == "16, one per image sent to the cloud"
    assert table["detector"].startswith("aligned on the training split of the generated training folder (24 normal, ")
    assert table["judged by inspection version 1"] == "16 images (16 of the 16 dropped), 4 alerts", \
        "every result document names the version"
    assert table["hosted model time"].startswith("none: nothing is hosted")
    recall, precision = re.match(r"([\d.]+) / ([\d.]+) \(floor 0\.75 / 0\.65\)",
                                 table["recall / precision on the labels"]).groups()
    assert float(recall) >= 0.75 and float(precision) >= 0.65
    assert table["duplicate MQTT messages"] == "0"


def test_demo_with_the_sagemaker_backend(tmp_path: Path) -> None:
    """moto's SageMaker control plane and the local InvokeEndpoint server: the endpoint is deleted."""
    table = summary(passed(run_demo(tmp_path, *SMALL, "--backend", "sagemaker")))
    assert table["result documents in the final bucket"] == "16, one per image sent to the cloud"
    assert table["hosted model time"] == "endpoint created for each batch and deleted after it"


def test_demo_in_edge_first_mode_with_the_local_backend(tmp_path: Path) -> None:
    """Local verdicts at once; the audit sample (and the uncertain band) also checked by the cloud,
    whose model is the tools' hosted stand-in: hosted only while there was work."""
    table = summary(passed(run_demo(tmp_path, *SMALL, "--inference", "edge-first", "--backend", "local")))
    assert table["results on MQTT"] == "16 (16 judged at the edge)"
    documents = int(table["result documents in the final bucket"].split(",")[0])
    assert 0 < documents < 16, "a sample, not every image, goes to the cloud"
    assert table["detector"].startswith("aligned on 24 generated normal parts")
    hosted, run = map(float, re.match(r"([\d.]+) s of a (\d+) s run", table["hosted model time"]).groups())
    assert 0 < hosted < run
    assert not any(name.startswith("judged by") for name in table), "the model file has no versions"


def test_demo_keeps_its_work_folder_only_when_asked(tmp_path: Path) -> None:
    """--keep DIR keeps the logs and the model, says so, and a second run into it clears it first."""
    kept = tmp_path / "kept"
    output = passed(run_demo(tmp_path, *SMALL, "--count", "6", "--keep", str(kept)))
    assert f"work folder kept in {kept}" in output
    assert {"edge.log", "cloud.log", "edge.yaml", "model", "broker", "training", "lambda-tmp"} <= \
        {p.name for p in kept.iterdir()}
    assert list((kept / "lambda-tmp").rglob("model.npz")), "the drain function's /tmp is in the work folder"
    (kept / "drop" / "stale.jpg").write_bytes(b"from the first run")
    # the second run also shows the sagemaker-serverless backend: its endpoint is kept, idle at no cost
    table = summary(passed(run_demo(tmp_path, *SMALL, "--count", "6", "--keep", str(kept),
                                    "--backend", "sagemaker-serverless")))
    assert not (kept / "drop" / "stale.jpg").exists(), "an earlier demo's folder is cleared, then reused"
    assert table["result documents in the final bucket"] == "6, one per image sent to the cloud"
    assert re.fullmatch(r"serverless endpoint created at the first batch and kept: billed per inference, nothing "
                        r"while idle \(6 invocations\)", table["hosted model time"]), table["hosted model time"]
