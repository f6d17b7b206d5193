"""The drain benchmark's figures as one markdown table, and a sentence on what limits the run.

The two targets are printed in capitals (RATIO TO IDEAL, HOSTED OVERHEAD) with met/NOT met.
"""
from __future__ import annotations

from batchsight_tools.bench.drain.pipeline import PipelineRun
from batchsight_tools.bench.heading import heading
from batchsight_tools.bench.drain.setup import MAX_OVERHEAD_SECONDS, DrainConfig

Row = tuple[str, str]


def print_table(cfg: DrainConfig, run: PipelineRun, baseline: float, ceiling: float | None) -> float:
    """Print the table; returns the pipeline's ratio to the ideal."""
    ratio = _throughput(cfg, run) / cfg.ideal
    rows = [*_setting_rows(cfg, run, baseline, ceiling), *_throughput_rows(cfg, run, baseline, ceiling),
            *_time_rows(cfg, run),
            ("what limits", verdict(cfg, run, ratio, ceiling)),
            ("time per state", ", ".join(f"{k} {v:.1f} s" for k, v in sorted(run.phases.items(),
                                                                           key=lambda kv: -kv[1])[:5]))]
    width = max(len(r[0]) for r in rows)
    print()
    print(heading())
    print()
    print(f"| {'figure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    return ratio


def targets_met(cfg: DrainConfig, run: PipelineRun, ratio: float) -> bool:
    """Every image has its result, and both targets hold (ratio to ideal, hosted overhead)."""
    overhead = run.hosted - cfg.ideal_hosted
    return (run.status == "SUCCEEDED" and run.results == cfg.images
            and ratio >= cfg.target_ratio and overhead < MAX_OVERHEAD_SECONDS)


def _throughput(cfg: DrainConfig, run: PipelineRun) -> float:
    """Images per second over the drain window."""
    return cfg.images / run.drain_window


def _setting_rows(cfg: DrainConfig, run: PipelineRun, baseline: float, ceiling: float | None) -> list[Row]:
    """How the execution ended, and what the run could reach at best."""
    tally = ", ".join(f"{k} {v}" for k, v in run.tally.items())
    rows = [
        ("execution", f"{run.status} in {run.wall:.1f} s; {run.results}/{cfg.images} results, "
                      f"{run.left_in_source} left in source, {run.dead_letters} dead letters; "
                      f"tally: {tally}"),
        ("ideal throughput", f"{cfg.ideal:.1f} images/s = min(cap {cfg.cap:g}, "
                             f"{cfg.workers} x {cfg.concurrency} / {cfg.latency:g} s)"),
        ("baseline (no AWS)", f"{baseline:.1f} images/s = {baseline / cfg.ideal:.3f} of ideal"),
    ]
    if ceiling:
        rows.append(("moto ceiling (probe)", f"{ceiling:.1f} images/s = "
                                             f"{ceiling / cfg.ideal:.2f} x ideal"))
    return rows


def _throughput_rows(cfg: DrainConfig, run: PipelineRun, baseline: float, ceiling: float | None) -> list[Row]:
    throughput = _throughput(cfg, run)
    ratio = throughput / cfg.ideal
    rows = [
        ("drain window", f"{run.drain_window:.2f} s, {run.drain_rounds} Drain round(s) "
                         "(first MapStateEntered -> last MapStateExited)"),
        ("pipeline throughput", f"{throughput:.1f} images/s"),
        ("RATIO TO IDEAL", f"{ratio:.3f} (target >= {cfg.target_ratio} when bound by the {cfg.limited_by}: "
                           f"{'met' if ratio >= cfg.target_ratio else 'NOT met'})"),
        ("ratio to baseline", f"{throughput / baseline:.3f}"),
    ]
    if ceiling:
        rows.append(("ratio to moto ceiling", f"{throughput / ceiling:.3f}"))
    return rows


def _time_rows(cfg: DrainConfig, run: PipelineRun) -> list[Row]:
    """The detect calls as the backend saw them, and where the hosted time went."""
    detect_throughput = cfg.images / run.detect_window if run.detect_window else 0.0
    overhead = run.hosted - cfg.ideal_hosted
    return [
        ("detect calls (backend)", f"{run.detect_calls} over {run.detect_window:.2f} s = "
                                   f"{detect_throughput:.1f}/s, mean concurrency "
                                   f"{run.mean_concurrency:.2f} of {cfg.workers * cfg.concurrency}"),
        ("hosted time", f"{run.hosted:.1f} s in {run.hosted_intervals} interval(s)"),
        ("ideal hosted time", f"{cfg.ideal_hosted:.1f} s = start {cfg.start_seconds:g} s + "
                              f"{cfg.images} / {cfg.ideal:.1f}"),
        ("HOSTED OVERHEAD", f"{overhead:.1f} s (target < {MAX_OVERHEAD_SECONDS:.0f} s: "
                            f"{'met' if overhead < MAX_OVERHEAD_SECONDS else 'NOT met'})"),
        ("execution start -> drain", f"{run.to_first_drain:.1f} s (check, lock, start, "
                                     f"{cfg.start_seconds:g} s warm-up polled every 1 s)"),
        ("drain end -> execution end", f"{run.after_last_drain:.1f} s (check, stop, release, check)"),
    ]


def verdict(cfg: DrainConfig, run: PipelineRun, ratio: float, ceiling: float | None) -> str:
    """What limits the run: nothing, moto (its ceiling is below the ideal), or the drain itself."""
    if ratio >= cfg.target_ratio:
        return f"nothing below the target; the drain runs at the {cfg.limited_by}"
    if ceiling is not None and ceiling < cfg.ideal:
        return (f"moto: it serves the drain's calls for at most {ceiling:.1f} images/s here, "
                f"below the ideal {cfg.ideal:.1f}; lower --cap or raise --latency to measure "
                "the drain itself")
    slots = cfg.workers * cfg.concurrency
    return (f"the drain (moto has headroom): detect calls averaged {run.mean_concurrency:.2f} "
            f"in flight of {slots} slots: the slots wait for messages, images or the limiter")
