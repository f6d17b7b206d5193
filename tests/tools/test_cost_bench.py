"""bench/cost.py on a small trace: its tables, its goals and its crossover, in the order documented."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from batchsight_tools.costmodel import rate_trace, write_trace

REPO = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_cost", REPO / "bench" / "cost.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_prints_a_row_per_backend_and_policy_with_the_floor(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "arrivals.csv"
    write_trace(trace, rate_trace(300, shifts=[(6.0, 9.0)]))
    assert _bench().main(["--no-plot", "--trace", str(trace), "--p50-seconds", "30", "--lines", "4"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("## Cost of judging images: `python bench/cost.py --no-plot --trace ")
    assert lines[2].startswith("prices: us-east-1, on demand, no free tier, taken 2026-12-04")
    header = lines.index(next(line for line in lines if line.startswith("| backend | policy | USD/day |")))
    rows = [[cell.strip() for cell in line.split("|")[1:3]] for line in lines[header + 2:header + 11]]
    assert rows == [
        ["sagemaker", "always on (the sample's mapping)"], ["sagemaker", "the sample's hourly schedule"],
        ["sagemaker", "batchsight start/stop"], ["sagemaker", "ideal start/stop"],
        ["sagemaker-serverless", rows[4][1]], ["lambda", rows[5][1]],
        ["sagemaker-serverless", rows[6][1]], ["lambda", rows[7][1]], ["-", "floor"]]
    assert rows[5][1].startswith("batchsight, p50 <= 30 s") and rows[7][1].startswith("batchsight, within 60 min")
    floor = lines[header + 10].split("|")
    assert floor[5].strip() == "1.00" and floor[7].strip() == "-"
    for section in ("### Goals", "### Where the money goes: the cheapest row (", "### The batch age against",
                    "### When start/stop hosting still wins", "### The hosted policies' model-hours"):
        assert section in out
    assert "goal <= 1.25" in out and "goal >= 10" in out
    goals = out[out.index("### Goals"):out.index("### Where the money goes")]
    ratios = {label: float(re.search(rf"  - {label}: ([0-9.]+)x the floor", goals).group(1))  # type: ignore[union-attr]
              for label in ("with the stack's fixed charges", "per image, without them", "one line of 4 on one stack",
                            "deployed with Dashboard=false", "deployed with Dashboard=false ImageUpload=final-bucket",
                            "per image, without them, ImageUpload=final-bucket")}
    # the fixed charges do not grow with images; four lines share all but their own per-line metrics
    assert ratios["per image, without them"] <= ratios["one line of 4 on one stack"] \
        < ratios["with the stack's fixed charges"]
    assert ratios["per image, without them"] < ratios["deployed with Dashboard=false"] \
        < ratios["with the stack's fixed charges"], "the dashboard is one of the fixed charges, not all"
    assert ratios["deployed with Dashboard=false ImageUpload=final-bucket"] < ratios["deployed with Dashboard=false"]
    assert ratios["per image, without them, ImageUpload=final-bucket"] < ratios["per image, without them"], \
        "an image uploaded to its place saves its COPY"
    assert "in the cloud: met" in goals or "in the cloud: NOT MET" in goals
    assert "COPY of the image to the final bucket" not in goals or "ImageUpload=final-bucket" in goals
    legacy = lines.index(next(line for line in lines if line.startswith("policy ")))
    assert [line.split()[0] for line in lines[legacy + 1:legacy + 5]] == ["always-on", "seed-hourly", "batchsight",
                                                                          "ideal"]
    assert lines[legacy + 5].startswith("ratios: batchsight/ideal")


def test_bench_refuses_a_site_of_no_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _bench().main(["--lines", "0"])
    assert "must be a whole number of 1 or more, got '0'" in capsys.readouterr().err


def test_bench_crossover_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert _bench().main(["--crossover"]) == 0
    out = capsys.readouterr().out
    assert "| CPU detector (50 ms an image) | 1769 MB | ml.m5.xlarge (4 at a time) | never | never |" in out
    assert "| GPU model (200 ms an image) | 10240 MB | ml.g4dn.xlarge (1 at a time) | never | never |" in out
