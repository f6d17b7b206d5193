"""Drop-to-alert latency with the gateway judging (``inference.mode: edge``), against its floor.

A camera drops casting stream images at a steady rate (10 a second in the full run) into the
drop folder of the edge program, its own process, which judges them with its own
``batchsight serve`` child and publishes on a real broker; an HMI subscriber notes when each
image's verdict arrives: its alert for a defective part, its result for a good one (the message
a PLC acts on). The floor is the work no implementation can skip, done on the same images at the
same rate in this process (floor.py): read, decode, detect, publish. Also measured: the CPU time the edge
program and its children (the decoder, the detector) spent per image over the run.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from batchsight_tools.bench.edge.figures import Figure, Figures
from batchsight_tools.bench.edge.floor import Floor, measure_floor, steady
from batchsight_tools.bench.edge.proc import tree_cpu_seconds, wait_until
from batchsight_tools.localcloud.broker import MqttBroker, protocol_for_port
from batchsight_tools.localcloud.camera import drop
from batchsight_tools.localcloud.gateway import start_gateway, stop_gateway, write_config
from batchsight_tools.localcloud.hmi import Subscriber, percentile

GOAL_FLOOR_RATIO = 3.0      # p50 at most this many times the floor ...
GOAL_P50_SECONDS = 0.25     # ... and under this
GOAL_P95_SECONDS = 0.5


def bench_edge_mode(settings: dict[str, Any], frames: list[Path], rate: float, work: Path, model: Path,
                    topics: str, figures: Figures) -> None:
    """One camera run at ``rate`` images/s with the edge judging, then the floor; the figures."""
    with MqttBroker() as broker:
        settings["mqtt"].update(port=broker.port, protocol=protocol_for_port(broker.port))
        subscriber = Subscriber(broker.port, topics, echo=False)
        subscriber.start()
        try:
            edge = start_gateway(write_config(settings, work / "edge.yaml"), work / "edge.log")
            try:
                wait_until(lambda: any(s.get("judging") == "edge" for s in subscriber.statuses), 60.0,
                           "the edge's status saying it judges at the edge", edge)
                cpu_before = tree_cpu_seconds(edge.pid)
                dropped = drop_at_rate(frames, Path(settings["drop_folder"]), rate)
                wait_until(lambda: len(subscriber.results) >= len(frames), 30.0 + len(frames) / rate,
                           "every result on MQTT", edge, required=False)
                cpu = tree_cpu_seconds(edge.pid) - cpu_before
            finally:
                stop_gateway(edge)
            latencies = verdict_latencies(subscriber, dropped)
            floor = measure_floor(frames, model, broker.port, topics.replace("#", "floor"), rate)
        finally:
            subscriber.stop()
    add_figures(figures, latencies, floor, cpu, len(frames), rate)


def drop_at_rate(frames: list[Path], folder: Path, rate: float) -> dict[str, float]:
    """Write each frame in one go at a steady ``rate``; the time each was complete."""
    folder.mkdir(parents=True, exist_ok=True)
    return {frame.name: drop(frame, folder, style="plain") for frame in steady(frames, rate)}


def verdict_latencies(subscriber: Subscriber, dropped: dict[str, float]) -> list[float]:
    """Seconds from each drop to its verdict message: the alert when there is one, else the result."""
    latencies = []
    for image_id, (arrived, message) in list(subscriber.results.items()):
        alert = subscriber.alerts.get(image_id)
        latencies.append((alert[0] if alert else arrived) - dropped[message["file_name"]])
    return sorted(latencies)


def add_figures(figures: Figures, latencies: list[float], floor: Floor, cpu: float, images: int,
                rate: float) -> None:
    p50 = percentile(latencies, 50) if latencies else float("nan")
    p95 = percentile(latencies, 95) if latencies else float("nan")
    floor_p50 = statistics.median(floor.seconds)
    goal_p50 = min(GOAL_FLOOR_RATIO * floor_p50, GOAL_P50_SECONDS)
    figures.add(Figure(
        "drop-to-alert p50, edge mode", p50, "s", floor_p50, "floor", p50 / floor_p50,
        f"<= {GOAL_FLOOR_RATIO:g}x floor and < {GOAL_P50_SECONDS} s", p50 <= goal_p50,
        detail=f"{len(latencies)} of {images} images at {rate:g}/s, judged by the gateway's own detector process; "
               f"the alert for a defective part, the result for a good one; floor per image at the same rate = "
               f"{floor.describe()}"))
    figures.add(Figure("drop-to-alert p95, edge mode", p95, "s", percentile(floor.seconds, 95), "floor p95",
                       p95 / percentile(floor.seconds, 95), f"< {GOAL_P95_SECONDS} s", p95 < GOAL_P95_SECONDS))
    figures.add(Figure("edge CPU per image", cpu / images * 1000, "ms", floor.cpu_per_image * 1000,
                       "floor CPU", cpu / images / floor.cpu_per_image,
                       detail="the edge program and its decoder and detector processes, user + system, over the "
                              "run (idle loops included); floor: this thread's CPU for the same work"))
