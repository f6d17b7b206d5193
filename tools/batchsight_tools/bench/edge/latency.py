"""Drop-to-result latency, p50 and p95: the whole product in local mode, with a camera dropping images.

LocalCloud runs the real state machine with the local backend in this process, a real MQTT
broker carries the results, and the edge program is its own process with an immediate batch
trigger (``batch.max_age_seconds: 0.01``). A camera drops casting stream images at a steady
rate, twice: with the cloud judging, then with the gateway judging (the same model, served by
the component's own ``batchsight serve``; edge_mode.py, at 10 images a second, against the
floor of floor.py). The cloud's baseline is the configured waits an image meets while the model
is hosted: main-loop tick + result poll (a whole image is taken at its close, without a settle);
the detail also gives the cold floor, with the model start on its readiness poll.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from batchsight.runtime import TICK_SECONDS
from batchsight_detector import fit
from batchsight_tools.bench.edge.edge_mode import bench_edge_mode
from batchsight_tools.bench.edge.figures import Figure, Figures
from batchsight_tools.bench.edge.inputs import edge_settings
from batchsight_tools.bench.edge.proc import wait_until
from batchsight_tools.bench.edge.sizes import Sizes
from batchsight_tools.localcloud.broker import MqttBroker, protocol_for_port
from batchsight_tools.localcloud.camera import drop
from batchsight_tools.localcloud.gateway import start_gateway, stop_gateway, write_config
from batchsight_tools.localcloud.hmi import Subscriber, percentile
from batchsight_tools.localcloud.stack import LocalCloud, StackOutputs, free_port

MODEL_START_SECONDS = 2.0   # the local backend's simulated start (LOCAL_MODEL_STARTUP_SECONDS)
POLL_SECONDS = 1            # the state machine's readiness poll (PollSeconds, whole seconds)
STABLE_SECONDS = 0.5        # edge ingest.stable_seconds: only for a file not whole at its close
RESULT_POLL_SECONDS = 0.5   # edge results.poll_seconds
# The immediate trigger: everything waiting is cut at the first tick after it was journaled.
# (batch.max_images: 1 cuts one image per tick instead, which caps the edge near 2 images/s.)
IMMEDIATE_AGE_SECONDS = 0.01
TOPICS = "factory/bench/line-1/gw-bench/inspection/#"


def bench_latency(data: Path, sizes: Sizes, work: Path, figures: Figures) -> None:
    """The product end to end; the cloud runs in this process, as in the demo and the tests."""
    stream = sorted((data / "casting" / "stream" / "images").glob("*.jp*g"))
    frames = stream[: sizes.latency]
    latencies, executions = measure(data, frames, sizes.latency_gap, work, stream[: sizes.edge_latency],
                                    sizes.edge_rate, figures)
    ledger = work / "hosting" / "ledger.jsonl"
    starts = len(ledger.read_text().splitlines()) if ledger.exists() else 0
    warm = TICK_SECONDS + RESULT_POLL_SECONDS  # a whole image is taken at its close: no settle
    cold = warm + math.ceil(MODEL_START_SECONDS / POLL_SECONDS) * POLL_SECONDS
    add_percentiles(figures, "", latencies["cloud"], warm, "floor (hosted)",
                    f"{len(latencies['cloud'])} of {len(frames)} images, one every {sizes.latency_gap} s, "
                    f"batch.max_age_seconds {IMMEDIATE_AGE_SECONDS}; {executions} executions, {starts} model "
                    f"starts; floor with the model hosted = edge tick "
                    f"{TICK_SECONDS} + result poll {RESULT_POLL_SECONDS} s; an image that waits for a start "
                    f"also pays {MODEL_START_SECONDS} s on a {POLL_SECONDS} s readiness poll ({cold:.1f} s)")


def add_percentiles(figures: Figures, mode: str, latencies: list[float], floor: float, floor_name: str,
                    detail: str) -> None:
    """p50 (with the detail) and p95 of one mode's latencies against its floor."""
    for percent in (50, 95):
        value = percentile(latencies, percent) if latencies else float("nan")
        figures.add(Figure(f"drop-to-result p{percent}{mode}", value, "s", floor, floor_name, value / floor,
                           detail=detail if percent == 50 else ""))


def measure(data: Path, frames: list[Path], gap: float, work: Path, edge_frames: list[Path], edge_rate: float,
            figures: Figures) -> tuple[dict[str, list[float]], int]:
    """The cloud's latencies (s), and how many executions it ran for them; the edge mode's figures
    are added to ``figures`` on the way."""
    saved_environment = dict(os.environ)  # LocalCloud points this process's AWS settings at moto
    cloud, outputs = start_local_cloud(data, work)
    try:
        latencies = {"cloud": run_mode(outputs, frames, gap, work, "cloud")}
        model = work / "model" / "detector.npz"
        bench_edge_mode(camera_run_settings(outputs, 0, work / "edge", "edge", model), edge_frames, edge_rate,
                        work / "edge", model, TOPICS, figures)
        wait_for_executions(cloud, outputs.state_machine_arn)
        executions = count_executions(cloud, outputs.state_machine_arn)
    finally:
        cloud.stop()
        os.environ.clear()
        os.environ.update(saved_environment)
    return latencies, executions


def start_local_cloud(data: Path, work: Path) -> tuple[LocalCloud, StackOutputs]:
    """LocalCloud with the local backend, fitted on casting normals (the camera's product)."""
    normals = [p.read_bytes() for p in sorted((data / "casting" / "train" / "normal").glob("*.jp*g"))]
    model_path = work / "model" / "detector.npz"
    fit(normals, working_size=128).save(model_path)
    cloud = LocalCloud(parameters={"PollSeconds": str(POLL_SECONDS), "DrainWorkers": "2", "DetectTps": "50",
                                   "ModelBackend": "local"},
                       function_environment={"LOCAL_MODEL_PATH": str(model_path),
                                             "LOCAL_MODEL_STATE_DIR": str(work / "hosting"),
                                             "LOCAL_MODEL_STARTUP_SECONDS": str(MODEL_START_SECONDS),
                                             "POWERTOOLS_LOG_LEVEL": "WARNING",
                                             "POWERTOOLS_METRICS_DISABLED": "true"})
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    return cloud, cloud.start()


def run_mode(outputs: StackOutputs, frames: list[Path], gap: float, work: Path, mode: str) -> list[float]:
    """One camera run with its own broker and HMI subscriber; the sorted latencies."""
    with MqttBroker() as broker:
        subscriber = Subscriber(broker.port, TOPICS, echo=False)
        subscriber.start()
        try:
            return run_camera(outputs, broker.port, subscriber, frames, gap, work / mode, inference=mode,
                              model=work / "model" / "detector.npz")
        finally:
            subscriber.stop()


def run_camera(outputs: StackOutputs, broker_port: int, subscriber: Subscriber, frames: list[Path], gap: float,
               work: Path, *, inference: str, model: Path) -> list[float]:
    """Start the edge, wait until it says it runs (and judges where it should), drop the frames,
    collect the latencies."""
    settings = camera_run_settings(outputs, broker_port, work, inference, model)
    edge = start_gateway(write_config(settings, work / "edge.yaml"), work / "edge.log")
    try:
        wait_until(lambda: any(s.get("judging") == inference for s in subscriber.statuses), 60.0,
                   f"the edge's status saying it judges in the {inference}", edge)
        dropped = drop_frames(frames, Path(settings["drop_folder"]), gap)
        wait_until(lambda: len(subscriber.results) >= len(frames), 60.0 + len(frames) * 0.5,
                   "every result on MQTT", edge, required=False)
    finally:
        stop_gateway(edge)
    return sorted(arrived - dropped[message["file_name"]]
                  for arrived, message in list(subscriber.results.values()))


def camera_run_settings(outputs: StackOutputs, broker_port: int, work: Path, inference: str,
                        model: Path) -> dict[str, Any]:
    """The edge configuration of one run: the local stack, the broker, the immediate trigger."""
    settings = edge_settings(
        work, endpoint_url=outputs.endpoint_url, mqtt_port=broker_port,
        batch={"max_age_seconds": IMMEDIATE_AGE_SECONDS, "interval_seconds": 3600.0},
        ingest={"stable_seconds": STABLE_SECONDS}, results={"poll_seconds": RESULT_POLL_SECONDS})
    settings["aws"].update(source_bucket=outputs.source_bucket, final_bucket=outputs.final_bucket,
                           queue_url=outputs.queue_url, state_machine_arn=outputs.state_machine_arn)
    settings["mqtt"]["protocol"] = protocol_for_port(broker_port)
    if inference != "cloud":
        settings["inference"] = {"mode": inference, "model": str(model),
                                 "endpoint": f"http://127.0.0.1:{free_port()}"}
    return settings


def drop_frames(frames: list[Path], folder: Path, gap: float) -> dict[str, float]:
    """Write each frame in one go (the camera's usual way); the time is when it is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    dropped = {}
    for frame in frames:
        dropped[frame.name] = drop(frame, folder, style="plain")
        time.sleep(gap)
    return dropped


def wait_for_executions(cloud: LocalCloud, arn: str, timeout: float = 60.0) -> None:
    """Let the last execution stop the model before the emulator goes away."""
    sfn = cloud.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]:
            return
        time.sleep(0.5)


def count_executions(cloud: LocalCloud, arn: str) -> int:
    pages = cloud.client("stepfunctions").get_paginator("list_executions").paginate(stateMachineArn=arn)
    return sum(len(page["executions"]) for page in pages)
