"""What the benchmarks print, from figures given by hand: the lines, the summary, the tables.

tests/integration/test_bench_edge.py runs bench/edge.py for real and checks only that every
figure came out; these pin the format and the verdicts without running anything.
"""
from __future__ import annotations

import pytest

from batchsight_tools.bench.drain.pipeline import PipelineRun
from batchsight_tools.bench.drain.setup import DrainConfig
from batchsight_tools.bench.drain.table import print_table, targets_met, verdict
from batchsight_tools.bench.edge.figures import Figure, Figures, number


def test_a_figure_is_one_line_with_its_baseline_ratio_and_goal() -> None:
    figure = Figure("ingest casting", 10548.3, "img/s", 36276.0, "read+sha256", 0.291, ">= 0.5", False, "why")
    assert figure.line() == ("[ingest casting] 10,548 img/s; baseline read+sha256 36,276 img/s; ratio 0.291; "
                             "goal >= 0.5: NOT MET  (why)")
    assert Figure("x", 0.0123, "s").line() == "[x] 0.0123 s"
    assert [number(v) for v in (1234.5, 12.34, 0.1234)] == ["1,234", "12.3", "0.123"]


def test_the_summary_names_the_goals_missed_and_the_table_has_a_row_per_figure(
        capsys: pytest.CaptureFixture[str]) -> None:
    figures = Figures()
    figures.add(Figure("upload S3 part", 1.5, "s", 1.6, "s3transfer", 0.956, "<= 1.15x", True))
    figures.add(Figure("ingest casting", 1.0, "img/s", 2.0, "read+sha256", 0.5, ">= 0.6", False))
    figures.add(Figure("edge RSS peak", 74.3, "MB", 47.1, "bare import", 1.577))
    assert not figures.summary(12.0)
    assert "summary: 3 figures, 1 of 2 goals met (not met: ingest casting), 12 s" in capsys.readouterr().out
    heading, blank, *table = figures.markdown().splitlines()
    assert heading.startswith("Measured ") and " with `" in heading and blank == ""
    assert len(table) == 2 + 3
    assert table[3] == "| ingest casting | 1.0 img/s | 2.0 img/s (read+sha256) | 0.500 | >= 0.6: **not met** |"


def _run(drain_window: float) -> PipelineRun:
    return PipelineRun(status="SUCCEEDED", wall=20.0, drain_window=drain_window, drain_rounds=1,
                       detect_window=12.0, detect_calls=200, mean_concurrency=3.1, hosted=19.0,
                       hosted_intervals=1, to_first_drain=6.0, after_last_drain=1.5, results=200,
                       left_in_source=0, dead_letters=0, phases={"Drain": 12.5}, tally={"processed": 200})


def test_the_drain_table_gives_the_ratio_to_ideal_and_says_what_limits(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = DrainConfig(images=200, latency=0.05, concurrency=4, workers=2, cap=16.0, start_seconds=5.0, probe=100)
    assert cfg.ideal == 16.0 and cfg.limited_by == "rate cap" and cfg.ideal_hosted == 17.5
    ratio = print_table(cfg, _run(12.5), baseline=16.4, ceiling=30.0)
    out = capsys.readouterr().out
    assert ratio == pytest.approx(1.0) and targets_met(cfg, _run(12.5), ratio)
    assert "| RATIO TO IDEAL             | 1.000 (target >= 0.95 when bound by the rate cap: met) |" in out
    assert "| HOSTED OVERHEAD            | 1.5 s (target < 120 s: met) |" in out
    slow = _run(40.0)
    assert verdict(cfg, slow, 0.3125, ceiling=10.0).startswith("moto: it serves the drain's calls for at most 10.0")
    assert verdict(cfg, slow, 0.3125, ceiling=30.0).startswith("the drain (moto has headroom)")
    assert not targets_met(cfg, slow, 0.3125)
    assert not targets_met(cfg, _run(12.5 / 0.94), 0.94)  # cap-bound: 0.95 is the least


def test_a_drain_bound_by_concurrency_must_reach_nine_tenths_of_its_ideal() -> None:
    cfg = DrainConfig(images=200, latency=0.5, concurrency=4, workers=2, cap=100.0, start_seconds=5.0, probe=0)
    assert (cfg.ideal, cfg.limited_by, cfg.target_ratio) == (16.0, "concurrency / latency", 0.9)
    assert targets_met(cfg, _run(200 / 16.0 / 0.91), 0.91)
    assert not targets_met(cfg, _run(200 / 16.0 / 0.89), 0.89)
