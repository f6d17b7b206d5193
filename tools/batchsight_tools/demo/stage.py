"""The pieces of a demo run: the edge configuration, the camera, the wait for results, the bucket's
documents, and the HTML report of the run.

Why a module of its own: session.py decides what starts and stops when; these are the steps it
calls, each small enough to read on its own.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from batchsight_tools.demo.frames import Frame
from batchsight_tools.localcloud.broker import protocol_for_port
from batchsight_tools.localcloud.camera import drop, style_for
from batchsight_tools.localcloud.gateway import write_config
from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.localcloud.stack import LocalCloud, StackOutputs, free_port

SITE, LINE, DEVICE = "demo-plant", "line-1", "gateway-1"
DEVICE_TOPIC = f"factory/{SITE}/{LINE}/{DEVICE}/inspection"
TOPICS = f"{DEVICE_TOPIC}/#"


def edge_config(work: Path, outputs: StackOutputs, broker_port: int, inference: str,
                model: Path, extra: dict[str, Any] | None = None) -> tuple[Path, int | None]:
    """The edge program's YAML file, and the port of its local detector (edge modes); ``extra``:
    more setting groups (--opcua's, plant.py)."""
    config: dict[str, Any] = {
        "site": SITE, "line": LINE, "device": DEVICE,
        "drop_folder": str(work / "drop"), "work_folder": str(work / "edge"),
        "aws": {"region": "us-east-1", "source_bucket": outputs.source_bucket,
                "final_bucket": outputs.final_bucket, "queue_url": outputs.queue_url,
                "state_machine_arn": outputs.state_machine_arn, "endpoint_url": outputs.endpoint_url,
                "result_queue_prefix": outputs.result_queue_prefix},  # results pushed, not listed
        "batch": {"interval_seconds": 6.0, "max_images": 25, "max_age_seconds": 8.0},
        "ingest": {"stable_seconds": 1.0},
        "results": {"poll_seconds": 1.0},
        # MQTT 5 by default; the amqtt fallback broker speaks only 3.1.1
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "protocol": protocol_for_port(broker_port)},
        "log_level": "INFO",
        **(extra or {}),
    }
    port = None
    if inference != "cloud":  # the component serves the same model file itself (batchsight serve)
        port = free_port()
        config["inference"] = {"mode": inference, "model": str(model),
                               "endpoint": f"http://127.0.0.1:{port}", "audit_fraction": 0.2}
    return write_config(config, work / "edge.yaml"), port


def play_camera(frames: list[Frame], drop_folder: Path, gap: float, stop: threading.Event) -> None:
    """Drop the frames one after another, the ways real cameras write files, until ``stop``."""
    drop_folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        if stop.is_set():
            return
        frame.dropped_at = drop(frame.path, drop_folder, style=style_for(index), name=frame.name)
        stop.wait(gap)


def wait_for_results(subscriber: Subscriber, frames: list[Frame], camera: threading.Thread,
                     edge: subprocess.Popen[bytes], timeout: float) -> bool:
    """Print progress until every image has its result (and every cloud check of an edge verdict
    finished), the edge program exits, or ``timeout`` passes; True in the first case."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if edge.poll() is not None:
            print(f"  the edge program exited with {edge.returncode}", flush=True)
            return False
        dropped = sum(1 for f in frames if f.dropped_at)
        line = (f"  progress: dropped {dropped}/{len(frames)}, results {len(subscriber.results)}, "
                f"alerts {len(subscriber.alerts)}, corrections {len(subscriber.corrections)}, "
                f"batches done {len(subscriber.batches)}")
        if line != last:
            print(line, flush=True)
            last = line
        audited = sum(1 for _, m in subscriber.results.values() if m["judged_by"] == "edge" and m["result_key"])
        if not camera.is_alive() and len(subscriber.results) >= len(frames) and \
                sum(b["images"] for b in subscriber.batches) >= audited:
            return True
        time.sleep(1.0)
    return False


def wait_for_executions(cloud: LocalCloud, state_machine_arn: str, timeout: float) -> None:
    """Until no execution runs: the last one stops the model after its results are out, so whether
    the model was left hosted is only known once it has ended."""
    stepfunctions = cloud.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stepfunctions.list_executions(
            stateMachineArn=state_machine_arn, statusFilter="RUNNING")["executions"]:
        time.sleep(0.5)


def result_documents(cloud: LocalCloud, bucket: str) -> dict[str, dict[str, Any]]:
    """Result documents of the final bucket by image id; ``_copies`` counts documents per image. Only
    keys of the result layout count."""
    from batchsight_tools.report.selection import RESULT_KEY

    s3 = cloud.client("s3")
    documents: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="results/"):
        for item in page.get("Contents", []):
            if RESULT_KEY.match(item["Key"]):
                document = json.loads(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
                documents.setdefault(document["image_id"], document)
                documents[document["image_id"]]["_copies"] = documents[document["image_id"]].get("_copies", 0) + 1
    return documents


def write_run_report(cloud: LocalCloud, bucket: str, since: datetime, output: Path) -> str:
    """`batchsight report` of this run (the device's images captured since it began), against the
    local cloud's final bucket while it still runs; returns the line that says what was written."""
    from batchsight_tools.report import Selection, write_report

    selection = Selection(bucket=bucket, site=SITE, line=LINE, device=DEVICE, since=since - timedelta(minutes=1))
    summary = write_report(selection, output, s3=cloud.client("s3"))
    return (f"HTML report of this run: {output} ({summary.images} images with a result document, "
            f"{summary.anomalous} anomalous)")
