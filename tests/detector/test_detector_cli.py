"""`batchsight fit` and `batchsight evaluate` on a labelled folder of generated parts."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from batchsight_detector.evaluation import auroc
from batchsight_tools.synth import generate, generate_training_set


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchsight_tools.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_fit_then_evaluate_prints_auroc_and_confusion(tmp_path: Path) -> None:
    train = tmp_path / "train" / "normal"
    train.mkdir(parents=True)
    for n, data in enumerate(generate_training_set(24, size=128, seed=4)):
        (train / f"n{n:03d}.jpg").write_bytes(data)
    for frame in generate(tmp_path / "gen", count=24, size=128, seed=5, anomaly_rate=0.5):
        target = tmp_path / "test" / frame.label / frame.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        frame.path.rename(target)
    model = tmp_path / "m.npz"
    fitted = _run("fit", "--normal", str(train), "--output", str(model))
    assert fitted.returncode == 0, fitted.stderr
    assert fitted.stdout.startswith("fitted patchcore on 24 normal images")   # the default method
    result = _run("evaluate", "--model", str(model), "--test", str(tmp_path / "test"))
    assert result.returncode == 0, result.stderr
    found = re.search(r"^AUROC (\d\.\d{3})$", result.stdout, re.M)
    assert found, result.stdout
    assert float(found.group(1)) >= 0.9
    assert "confusion matrix" in result.stdout and "latency per image" in result.stdout
    assert re.search(r"^precision \d\.\d{3}  recall \d\.\d{3}  F1 \d\.\d{3}", result.stdout, re.M)

    aligned = _run("fit", "--normal", str(train), "--output", str(tmp_path / "a.npz"),
                   "--method", "aligned", "--working-size", "64")
    assert aligned.returncode == 0 and aligned.stdout.startswith("fitted aligned"), aligned.stderr


def test_auroc_by_ranks() -> None:
    assert auroc(np.array([0.1, 0.2, 0.9, 0.8]), np.array([0, 0, 1, 1])) == 1.0
    assert auroc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    with pytest.raises(ValueError):
        auroc(np.array([0.1]), np.array([0]))
