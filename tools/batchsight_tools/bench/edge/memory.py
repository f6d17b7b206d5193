"""Memory: peak (VmHWM) and steady (median VmRSS) of ``python -m batchsight run`` with a backlog.

10,000 images wait in its journal while the cloud is unreachable, so the backlog is cut into
batches whose uploads keep failing with backoff: the program holds the most it will hold.
The baseline is a bare ``python -c 'import batchsight.runtime'``. Goal: under 100 MB steady.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from batchsight.config import Config, config_from_dict
from batchsight.journal import ImageState, Journal
from batchsight_tools.bench.edge.component import journal_quickly
from batchsight_tools.bench.edge.figures import Figure, Figures
from batchsight_tools.bench.edge.inputs import edge_settings, small_jpeg, unique_jpeg
from batchsight_tools.bench.edge.proc import bare_import_rss, sample_rss
from batchsight_tools.bench.edge.sizes import Sizes
from batchsight_tools.localcloud.broker import MqttBroker, protocol_for_port
from batchsight_tools.localcloud.gateway import start_gateway, stop_gateway, write_config
from batchsight_tools.localcloud.stack import free_port

STEADY_RSS_MAX_MB = 100.0


def bench_memory(data: Path, sizes: Sizes, work: Path, figures: Figures) -> None:
    baseline = bare_import_rss()
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    settings = edge_settings(work, endpoint_url=unreachable, batch={"max_images": sizes.memory_batch})
    journal_seconds = fill_journal(config_from_dict(settings), sizes.memory)
    with MqttBroker() as broker:
        settings["mqtt"].update(port=broker.port, protocol=protocol_for_port(broker.port))
        edge = start_gateway(write_config(settings, work / "edge.yaml"), work / "edge.log")
        try:
            samples, peak = sample_rss(edge, sizes.memory_seconds)
        finally:
            stop_gateway(edge)
    waiting, batches = waiting_images(config_from_dict(settings))
    steady = statistics.median(samples[len(samples) // 2:])
    detail = (f"{waiting:,} images waiting (journaled in {journal_seconds:.1f} s), {batches} batches cut "
              f"of at most {sizes.memory_batch}, cloud unreachable, "
              f"{sizes.memory_seconds:.0f} s sampled every 0.25 s; steady = median of the second half")
    figures.add(Figure("edge RSS steady", steady, "MB", baseline, "bare import", steady / baseline,
                       f"< {STEADY_RSS_MAX_MB:.0f} MB", steady < STEADY_RSS_MAX_MB, detail))
    figures.add(Figure("edge RSS peak", peak, "MB", baseline, "bare import", peak / baseline))


def fill_journal(config: Config, count: int) -> float:
    """``count`` small distinct JPEGs waiting in the journal; seconds taken."""
    base = small_jpeg()
    return journal_quickly(config, ((f"waiting_{n:05d}.jpg", unique_jpeg(base, n)) for n in range(count)))


def waiting_images(config: Config) -> tuple[int, int]:
    """Images still short of the cloud after the run (the backlog really stayed), and the
    batches cut from them that the edge kept failing to upload."""
    journal = Journal(config.journal_path)
    try:
        return journal.counts().get(ImageState.VALIDATED.value, 0), len(journal.open_batches())
    finally:
        journal.close()
