"""``batchsight demo --images DIR`` is honest: the detector `batchsight fit` makes, and a floor it must reach.

On ../shared/data/casting the demo fits patchcore (flips and the 180-degree turn added, the
threshold from train/anomaly) and must find at least the floor's share of the defective parts
(recall 0.75) with at most its share of false alarms (precision 0.65); it measured 0.90 / 0.79.
A folder whose "defective" test images are in truth good parts must fail, with one line that
says why, and still leave nothing behind.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from batchsight_tools.synth import generate, generate_training_set
from tests.integration.test_demo import passed, run_demo, summary
from tests.support import SHARED

pytestmark = pytest.mark.integration
CASTING = SHARED / "data" / "casting"


@pytest.mark.skipif(not CASTING.is_dir(), reason=f"{CASTING} not found (../shared/data/casting)")
def test_demo_on_the_casting_photographs_reaches_the_floor(tmp_path: Path) -> None:
    table = summary(passed(run_demo(tmp_path, "--images", str(CASTING), timeout=600)))
    assert table["images dropped"] == "60 (30 with defects)"
    # the template's default backend: version 1 fitted and published as a quality engineer does
    assert re.match(rf"patchcore on the training split of {re.escape(str(CASTING / 'train'))} \(\d+ normal, \d+ "
                    r"anomaly; the anomaly images set the threshold\), fitted with `batchsight model fit`",
                    table["detector"]), table["detector"]
    assert table["judged by inspection version 1"].startswith("60 images"), table
    assert table["result documents in the final bucket"] == "60, one per image sent to the cloud"
    recall, precision = map(float, re.match(r"([\d.]+) / ([\d.]+) \(floor 0\.75 / 0\.65\)",
                                            table["recall / precision on the labels"]).groups())
    assert recall >= 0.75 and precision >= 0.65, table


def _mislabelled(root: Path) -> Path:
    """The shared layout, but the "anomaly" test images are good parts: nothing can be found."""
    (root / "train" / "normal").mkdir(parents=True)
    for n, data in enumerate(generate_training_set(12, size=128, seed=3)):
        (root / "train" / "normal" / f"good_{n}.jpg").write_bytes(data)
    for label in ("normal", "anomaly"):
        for image in generate(root / "made" / label, count=4, anomaly_rate=0.0, size=128, seed=len(label)):
            (root / "test" / label).mkdir(parents=True, exist_ok=True)
            shutil.copy(image.path, root / "test" / label / f"{label}_{image.path.name}")
    shutil.rmtree(root / "made")
    return root


def test_demo_below_the_floor_fails_with_one_line_that_says_why(tmp_path: Path) -> None:
    images = _mislabelled(tmp_path / "images")
    result = run_demo(tmp_path, "--images", str(images), "--method", "aligned", "--model-startup", "1")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "backend local, not the template's lambda: " in result.stdout  # no train/anomaly to measure a version
    assert "demo passed" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("batchsight demo: FAILED in "), result.stderr
    assert re.search(r"recall 0\.00 \(0 of 4 defective parts found\) is below the floor 0\.75 \(pictures of "
                     r"defective parts in train/anomaly would set the threshold", lines[0]), lines[0]
    assert "one per image sent to the cloud" in summary(result.stdout)["result documents in the final bucket"], \
        "the pipeline itself worked: only detection failed"
