"""``batchsight demo``: the whole product on one machine, with no AWS account.

Generates images, fits the local detector, starts the local cloud (moto server with the
stack from cloud/template.yaml) and a real MQTT broker, runs the edge program as its own
process on a drop folder, plays a camera into it, and prints the alerts as they arrive and
a summary. Exits 0 only if every image got exactly one result and the alerts match.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchsight_detector import fit
from batchsight_tools.localcloud.broker import MqttBroker
from batchsight_tools.localcloud.camera import drop, style_for
from batchsight_tools.localcloud.gateway import start_gateway, stop_gateway, write_config
from batchsight_tools.localcloud.hmi import Subscriber, percentile
from batchsight_tools.localcloud.hosting import hosting_for
from batchsight_tools.localcloud.stack import LocalCloud, StackOutputs, free_port
from batchsight_tools.synth import generate, generate_training_set

SITE, LINE, DEVICE = "demo-plant", "line-1", "gateway-1"


@dataclass
class Frame:
    path: Path
    label: str
    dropped_at: float = 0.0


def _frames(args: argparse.Namespace, work: Path) -> tuple[list[Frame], Path]:
    """Demo frames and a fitted model: generated, or from a folder with the shared/data layout."""
    model_path = work / "model" / "detector.npz"
    model_path.parent.mkdir(parents=True)
    if args.images:
        root = Path(args.images)
        normals = sorted((root / "train" / "normal").iterdir())
        training = [p.read_bytes() for p in normals]
        frames = [Frame(p, label) for label in ("normal", "anomaly")
                  for p in sorted((root / "test" / label).iterdir())][: args.count]
    else:
        training = generate_training_set(args.train, size=args.size, seed=args.seed)
        frames = [Frame(img.path, img.label) for img in
                  generate(work / "camera", count=args.count, size=args.size, seed=args.seed,
                           anomaly_rate=args.anomaly_rate)]
    started = time.time()
    fit(training, working_size=128).save(model_path)
    print(f"  fitted the local detector on {len(training)} normal images in "
          f"{time.time() - started:.1f} s", flush=True)
    return frames, model_path


def _edge_config(work: Path, outputs: StackOutputs, broker_port: int, inference: str, model: Path) -> Path:
    from batchsight_tools.localcloud.broker import protocol_for_port

    config = {
        "site": SITE, "line": LINE, "device": DEVICE,
        "drop_folder": str(work / "drop"), "work_folder": str(work / "edge"),
        "aws": {"region": "us-east-1", "source_bucket": outputs.source_bucket,
                "final_bucket": outputs.final_bucket, "queue_url": outputs.queue_url,
                "state_machine_arn": outputs.state_machine_arn, "endpoint_url": outputs.endpoint_url},
        "batch": {"interval_seconds": 6.0, "max_images": 25, "max_age_seconds": 8.0},
        "ingest": {"stable_seconds": 1.0},
        "results": {"poll_seconds": 1.0},
        # MQTT 5 by default; the amqtt fallback broker speaks only 3.1.1
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "protocol": protocol_for_port(broker_port)},
        "log_level": "INFO",
    }
    if inference != "cloud":  # the component serves the same model file itself (batchsight serve)
        config["inference"] = {"mode": inference, "model": str(model),
                               "endpoint": f"http://127.0.0.1:{free_port()}", "audit_fraction": 0.2}
    return write_config(config, work / "edge.yaml")


def _play_camera(frames: list[Frame], drop_folder: Path, gap: float) -> None:
    drop_folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        frame.dropped_at = drop(frame.path, drop_folder, style=style_for(index))
        time.sleep(gap)


def _wait(subscriber: Subscriber, frames: list[Frame], camera: threading.Thread,
          edge: subprocess.Popen[bytes], timeout: float) -> bool:
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
            return True  # every result out, and the cloud's checks of edge verdicts finished
        time.sleep(1.0)
    return False


def _result_documents(cloud: LocalCloud, bucket: str) -> dict[str, dict[str, Any]]:
    s3 = cloud.client("s3")
    documents: dict[str, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="results/"):
        for item in page.get("Contents", []):
            if item["Key"].endswith(".json"):
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                document = json.loads(body)
                documents.setdefault(document["image_id"], document)
                documents[document["image_id"]]["_copies"] = documents[document["image_id"]].get("_copies", 0) + 1
    return documents


def _summary(frames: list[Frame], subscriber: Subscriber, documents: dict[str, dict[str, Any]],
             hosted_seconds: float | None, elapsed: float) -> bool:
    by_name = {f.path.name: f for f in frames}
    correct = 0
    latencies = []
    for arrived, message in subscriber.results.values():
        frame = by_name[message["file_name"]]
        correct += int(message["is_anomalous"] == (frame.label == "anomaly"))
        latencies.append(arrived - frame.dropped_at)
    anomalous_results = sum(1 for _, m in subscriber.results.values() if m["is_anomalous"])
    anomalous_results += sum(1 for _, m in subscriber.corrections.values() if m["is_anomalous"])
    at_edge = sum(1 for _, m in subscriber.results.values() if m["judged_by"] == "edge")
    to_cloud = sum(1 for _, m in subscriber.results.values() if m["result_key"])  # judged or checked there
    single = all(d.get("_copies") == 1 for d in documents.values())
    latencies.sort()
    rows = [
        ("images dropped", f"{len(frames)}"),
        ("result documents in the final bucket", f"{len(documents)} (one per image sent to the cloud: "
                                                 f"{'yes' if single and len(documents) == to_cloud else 'NO'})"),
        ("results on MQTT", f"{len(subscriber.results)} ({at_edge} judged at the edge)"),
        ("corrections (cloud overruled the edge)", f"{len(subscriber.corrections)}"),
        ("anomalies found (alerts)",
         f"{len(subscriber.alerts)} of {sum(f.label == 'anomaly' for f in frames)} defective parts"),
        ("detector accuracy on the labels", f"{correct / max(1, len(subscriber.results)):.1%}"),
        ("batches", f"{len(subscriber.batches)}"),
        ("hosted model time", f"{hosted_seconds:.1f} s (of {elapsed:.1f} s demo run time)"
         if hosted_seconds is not None else "endpoint deleted after each batch"),
        ("drop-to-alert latency p50 / p95", f"{percentile(latencies, 50):.1f} s / {percentile(latencies, 95):.1f} s"
         if latencies else "-"),
        ("duplicate messages", f"{subscriber.duplicates}"),
    ]
    width = max(len(r[0]) for r in rows)
    print("\n  " + "-" * (width + 40))
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    print("  " + "-" * (width + 40))
    return (len(documents) == to_cloud and len(frames) == len(subscriber.results) and single
            and len(subscriber.alerts) == anomalous_results and subscriber.duplicates == 0)


def run(args: argparse.Namespace) -> int:
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="batchsight-demo-"))
    if work.exists() and any(work.iterdir()):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, filename=work / "cloud.log")
    print(f"batchsight demo (work folder {work})", flush=True)
    started = time.time()
    frames, model_path = _frames(args, work)
    print(f"  {len(frames)} images ready, {sum(f.label == 'anomaly' for f in frames)} with defects", flush=True)
    hosting = hosting_for(args.backend, model_path, work, args.model_startup)
    parameters, environment = hosting.stack_settings()
    cloud = LocalCloud(parameters={"PollSeconds": "1", "DrainWorkers": "2", "DetectTps": "50", **parameters},
                       function_environment={**environment, "POWERTOOLS_LOG_LEVEL": "WARNING",
                                             "POWERTOOLS_METRICS_DISABLED": "true"})
    outputs = cloud.start()
    hosting.deploy(cloud)
    print(f"  local AWS (moto) at {outputs.endpoint_url}: the stack of cloud/template.yaml, "
          f"model backend {hosting.backend}", flush=True)
    broker = MqttBroker().start()
    print(f"  MQTT broker ({broker.kind}) on 127.0.0.1:{broker.port}", flush=True)
    subscriber = Subscriber(broker.port, f"factory/{SITE}/{LINE}/{DEVICE}/inspection/#")
    subscriber.start()
    edge = start_gateway(_edge_config(work, outputs, broker.port, args.inference, model_path), work / "edge.log")
    print(f"  edge program running (pid {edge.pid}); camera dropping images...", flush=True)
    camera = threading.Thread(target=_play_camera, args=(frames, work / "drop", args.gap), daemon=True)
    camera.start()
    try:
        finished = _wait(subscriber, frames, camera, edge, args.timeout)
        time.sleep(1.5)  # let the last batch summary arrive
    finally:
        stop_gateway(edge)
        subscriber.stop()
        broker.stop()
    still_hosted = hosting.still_hosted(cloud)
    documents = _result_documents(cloud, outputs.final_bucket)
    hosting.close()
    cloud.stop()
    ok = _summary(frames, subscriber, documents, hosting.hosted_seconds(), time.time() - started)
    if still_hosted:
        print("  the model was left hosted: a cost invariant is broken")
    ok = ok and finished and not still_hosted
    print(f"\n  demo {'passed' if ok else 'FAILED'} in {time.time() - started:.0f} s; "
          f"logs in {work}", flush=True)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batchsight demo", description=__doc__)
    parser.add_argument("--count", type=int, default=60, help="images to drop (default 60)")
    parser.add_argument("--train", type=int, default=40, help="normal images to fit on")
    parser.add_argument("--size", type=int, default=256, help="generated image side in px")
    parser.add_argument("--anomaly-rate", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gap", type=float, default=0.1, help="seconds between camera frames")
    parser.add_argument("--model-startup", type=float, default=3.0,
                        help="seconds the local model takes to become hosted")
    parser.add_argument("--backend", choices=("local", "sagemaker"), default="local",
                        help="model backend the pipeline drives (sagemaker: moto's control plane "
                             "plus a local InvokeEndpoint server)")
    parser.add_argument("--inference", choices=("cloud", "edge", "edge-first"), default="cloud",
                        help="where images are judged: the cloud batch (default), the gateway's local "
                             "detector, or the gateway first with a 20%% audit sample and the uncertain "
                             "band checked by the cloud")
    parser.add_argument("--images", help="use real images: a folder with train/normal and test/{normal,anomaly}")
    parser.add_argument("--workdir", help="keep everything in this folder (default: a new temp folder)")
    parser.add_argument("--timeout", type=float, default=150.0)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
