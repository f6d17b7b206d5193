"""Drain efficiency of the batch pipeline under moto, against the ideal and a plain baseline.

A backend with a fixed per-call latency and a rate cap (``fixed_latency_backend.py``, loaded
as ``MODEL_BACKEND=plugin:fixed_latency_backend:FixedLatencyBackend``) is driven by the real
state machine (cloud/statemachine/batch_pipeline.asl.json executed by moto, Lambdas
in-process, LocalCloud as in the tests). N tiny JPEGs are uploaded and queued, one execution
drains them, and the run prints:

  - drain throughput: images / (first ``Drain`` MapStateEntered -> last MapStateExited in the
    execution history), against ideal = min(cap, workers * concurrency / latency); the target
    is 0.85 of ideal;
  - hosted time (the backend's start/stop ledger) against start time + images / ideal
    throughput, and the overhead in seconds (target: under 120 s);
  - the baseline measured in the same run: the same backend and the same limiter (one
    RateLimiter(cap / workers, burst=concurrency) per worker, ``concurrency`` threads each) fed
    from memory by plain thread pools, no SQS / S3 / Step Functions;
  - what limits: moto's ceiling for the drain's calls per image (``--probe``, same threads,
    queue of the same average depth), the detect calls and their mean concurrency as the
    backend saw them, and the drain's own batch bound.

moto runs with a cheaper SQS clock (see ``speed_up_moto``; ``--stock-moto`` turns it off).
Exit status 0 when both targets are met.

    python bench/pipeline_drain.py                    # 1,000 images, 50 ms, 2 x 4, cap 16/s
    python bench/pipeline_drain.py --images 200       # quick run (about 1 minute)
    python bench/pipeline_drain.py --cap 40           # above moto's ceiling on 2 cores
    python bench/pipeline_drain.py --latency 0.5 --cap 100   # bound by concurrency / latency
"""
from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))  # the plug-in module must be importable by the Lambdas
sys.path.insert(1, str(REPO / "cloud" / "src"))

import fixed_latency_backend  # noqa: E402
from fixed_latency_backend import FixedLatencyBackend  # noqa: E402

from batchsight_pipeline.ratelimit import RateLimiter  # noqa: E402

PLUGIN = "plugin:fixed_latency_backend:FixedLatencyBackend"
RECEIVE_BATCH = 10  # the drain's MaxNumberOfMessages
TARGET_RATIO = 0.85
MAX_OVERHEAD_SECONDS = 120.0


@dataclass
class Config:
    images: int
    latency: float
    concurrency: int
    workers: int
    cap: float
    start_seconds: float
    probe: int

    @property
    def ideal(self) -> float:
        return min(self.cap, self.workers * self.concurrency / self.latency)

    @property
    def batch_bound(self) -> float:
        """The drain's own bound with free AWS calls: each worker receives up to 10 messages and
        waits for all of them before the next receive, so only 10 / ceil(10 / concurrency)
        detect calls per worker are in flight on average over a batch."""
        usable = RECEIVE_BATCH / math.ceil(RECEIVE_BATCH / self.concurrency)
        return min(self.cap, self.workers * usable / self.latency)

    @property
    def limited_by(self) -> str:
        concurrency_bound = self.workers * self.concurrency / self.latency
        return "rate cap" if self.cap <= concurrency_bound else "concurrency / latency"


@dataclass
class PipelineRun:
    status: str
    wall: float
    drain_window: float
    drain_rounds: int
    detect_window: float
    detect_calls: int
    mean_concurrency: float
    hosted: float
    hosted_intervals: int
    to_first_drain: float
    after_last_drain: float
    results: int
    left_in_source: int
    dead_letters: int
    phases: dict[str, float] = field(default_factory=dict)
    tally: dict[str, int] = field(default_factory=dict)


# --- the emulator --------------------------------------------------------------------------

def speed_up_moto() -> None:
    """Make moto's SQS clock cheap; same values, so the same behaviour.

    moto 5.2's SQS looks at every message of the queue on each receive (``Queue.messages``
    calls ``Message.visible`` and ``Message.delayed``, each reading the clock through
    ``utcnow() - utcfromtimestamp(0)``, about 5 us), so one receive costs about 10 ms of CPU
    with 1,000 messages queued, under the GIL that the in-process Lambdas share: moto's
    ceiling for the drain falls from about 28 to about 14 images/s. Real SQS has no such cost.
    ``time.time()`` gives the same UTC epoch time some 50 times cheaper.
    """
    import moto.sqs.models as sqs_models

    unix_time, unix_time_millis = sqs_models.unix_time, sqs_models.unix_time_millis
    sqs_models.unix_time = lambda dt=None: time.time() if dt is None else unix_time(dt)
    sqs_models.unix_time_millis = (lambda dt=None: time.time() * 1000.0 if dt is None
                                   else unix_time_millis(dt))


# --- inputs ---------------------------------------------------------------------------------

def make_jpegs(count: int) -> list[bytes]:
    """Small, valid, distinct JPEGs (64 x 64, the smallest side the edge accepts)."""
    from PIL import Image

    images = []
    for n in range(count):
        picture = Image.new("L", (64, 64), color=128)
        picture.putpixel((n % 64, (n // 64) % 64), 0)
        picture.putpixel(((n // 4096) % 64, 63), 255)
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    assert len(set(images)) == count, "images must be distinct (the key is their SHA-256)"
    return images


def queue_images(cloud: Any, outputs: Any, images: list[bytes], batch_id: str, *,
                 queue_url: str = "", threads: int = 8) -> float:
    """Upload to the source bucket and enqueue the image messages, as the edge does."""
    import hashlib

    from botocore.config import Config as BotoConfig

    s3 = _client(cloud, "s3", BotoConfig(max_pool_connections=threads * 2))
    sqs = _client(cloud, "sqs", BotoConfig(max_pool_connections=threads * 2))
    messages = []
    for n, data in enumerate(images):
        image_id = hashlib.sha256(data).hexdigest()
        key = f"incoming/bench/l1/d1/2026/11/23/{image_id}.jpg"
        messages.append({"v": 1, "bucket": outputs.source_bucket, "key": key, "image_id": image_id,
                         "site": "bench", "line": "l1", "device": "d1",
                         "captured_at": "2026-11-23T10:00:00Z", "batch_id": batch_id,
                         "file_name": f"bench_{n:05d}.jpg"})
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda pair: s3.put_object(Bucket=outputs.source_bucket, Key=pair[1]["key"],
                                                 Body=pair[0], ContentType="image/jpeg"),
                      zip(images, messages)))

        def send(chunk: list[dict[str, Any]]) -> None:
            response = sqs.send_message_batch(QueueUrl=queue_url or outputs.queue_url, Entries=[
                {"Id": str(i), "MessageBody": json.dumps(m)} for i, m in enumerate(chunk)])
            if response.get("Failed"):
                raise RuntimeError(f"send_message_batch failed: {response['Failed']}")

        list(pool.map(send, [messages[i:i + 10] for i in range(0, len(messages), 10)]))
    return time.perf_counter() - started


def _client(cloud: Any, service: str, config: Any) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=cloud.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing", config=config)


# --- the baseline: backend + limiter, no AWS ------------------------------------------------

def run_baseline(cfg: Config, images: list[bytes], state_dir: Path) -> float:
    """Images per second of the same backend and limiter fed from memory by thread pools."""
    backend = FixedLatencyBackend(state_dir=state_dir, latency_seconds=cfg.latency,
                                  startup_seconds=0, start_timeout_seconds=60)
    backend.start(run_token="baseline")
    shares = [images[w::cfg.workers] for w in range(cfg.workers)]

    def worker(share: list[bytes]) -> None:
        limiter = RateLimiter(cfg.cap / cfg.workers, burst=cfg.concurrency)

        def one(data: bytes) -> None:
            limiter.acquire()
            backend.detect(data, content_type="image/jpeg")

        with ThreadPoolExecutor(cfg.concurrency) as pool:
            list(pool.map(one, share))

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    backend.stop()
    return len(images) / elapsed


# --- the probe: what moto charges for one image's calls -------------------------------------

def probe_moto(cloud: Any, outputs: Any, cfg: Config, threads: int) -> float:
    """moto's ceiling for the drain's calls, in images/s, with no model and no limiter.

    Per image, the calls the drain makes (get the image, put the result, copy the image,
    delete the source, delete the message, a tenth of a receive of 10), on ``threads``
    threads in one process with moto, like the drain Lambdas. The probe's queue holds about
    as many messages as the measured queue does on average (images / 2), because moto's
    SQS cost grows with the queue's depth.
    """
    from botocore.config import Config as BotoConfig

    sqs = _client(cloud, "sqs", BotoConfig(max_pool_connections=threads * 2))
    s3 = _client(cloud, "s3", BotoConfig(max_pool_connections=threads * 2))
    queue_url = sqs.create_queue(QueueName="bench-probe")["QueueUrl"]
    images = [data + b"probe" for data in make_jpegs(cfg.probe)]  # distinct from the batch
    queue_images(cloud, outputs, images, "probe", queue_url=queue_url)
    filler = max(0, cfg.images // 2 - cfg.probe // 2)
    with ThreadPoolExecutor(8) as pool:  # after the probe's own messages: received last
        list(pool.map(lambda start: sqs.send_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(i), "MessageBody": "{}"} for i in range(min(10, filler - start))]),
            range(0, filler, 10)))

    def one(message: dict[str, Any]) -> None:
        body = json.loads(message["Body"])
        s3.get_object(Bucket=body["bucket"], Key=body["key"])["Body"].read()
        result_key = body["key"].replace("incoming/", "results/").replace(".jpg", ".json")
        s3.put_object(Bucket=outputs.final_bucket, Key=result_key, Body=b"{}" * 400)
        s3.copy_object(Bucket=outputs.final_bucket, Key=result_key.replace(".json", ".jpg"),
                       CopySource={"Bucket": body["bucket"], "Key": body["key"]})
        s3.delete_object(Bucket=body["bucket"], Key=body["key"])
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    done, started = 0, time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        while done < cfg.probe:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                break
            list(pool.map(one, messages))
            done += len(messages)
    ceiling = done / (time.perf_counter() - started)
    sqs.delete_queue(QueueUrl=queue_url)
    _empty_final_bucket(cloud, outputs)
    return ceiling


def _empty_final_bucket(cloud: Any, outputs: Any) -> None:
    s3 = cloud.client("s3")
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=outputs.final_bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=outputs.final_bucket, Key=item["Key"], VersionId=item["VersionId"])


# --- the pipeline ---------------------------------------------------------------------------

def run_pipeline(cloud: Any, outputs: Any, cfg: Config, state_dir: Path, timeout: float) -> PipelineRun:
    sfn = cloud.client("stepfunctions")
    fixed_latency_backend.CALLS.clear()
    started = time.perf_counter()
    arn = sfn.start_execution(stateMachineArn=outputs.state_machine_arn, name="bench-drain",
                              input=json.dumps({"v": 1, "trigger": "manual"}))["executionArn"]
    deadline = started + timeout
    while True:
        described = sfn.describe_execution(executionArn=arn)
        if described["status"] != "RUNNING":
            break
        if time.perf_counter() > deadline:
            raise SystemExit(f"execution still running after {timeout:.0f} s")
        time.sleep(0.5)
    wall = time.perf_counter() - started
    events = [e for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
              for e in page["events"]]
    entered = [_epoch(e["timestamp"]) for e in events if e["type"] == "MapStateEntered"
               and e["stateEnteredEventDetails"]["name"] == "Drain"]
    exited = [_epoch(e["timestamp"]) for e in events if e["type"] == "MapStateExited"
              and e["stateExitedEventDetails"]["name"] == "Drain"]
    execution_start = _epoch(events[0]["timestamp"])
    execution_end = _epoch(events[-1]["timestamp"])
    if not entered or not exited:
        raise SystemExit(f"execution {described['status']}: no Drain state in its history "
                         f"({described.get('cause', '')})")

    calls = list(fixed_latency_backend.CALLS)
    detect_window = max(c[1] for c in calls) - min(c[0] for c in calls) if calls else 0.0
    busy = sum(c[1] - c[0] for c in calls)
    ledger = FixedLatencyBackend(state_dir=state_dir, latency_seconds=cfg.latency,
                                 startup_seconds=cfg.start_seconds, start_timeout_seconds=60)
    intervals = ledger.intervals()
    hosted = sum(i["stopped"] - i["started"] for i in intervals)

    s3, sqs = cloud.client("s3"), cloud.client("sqs")
    results = sum(1 for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=outputs.final_bucket, Prefix="results/")
        for o in page.get("Contents", []) if o["Key"].endswith(".json"))
    left = s3.list_objects_v2(Bucket=outputs.source_bucket).get("KeyCount", 0)
    dead = int(sqs.get_queue_attributes(QueueUrl=outputs.dead_letter_queue_url,
                                        AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])
    return PipelineRun(
        status=described["status"], wall=wall, drain_window=max(exited) - min(entered),
        drain_rounds=len(entered), detect_window=detect_window, detect_calls=len(calls),
        mean_concurrency=busy / detect_window if detect_window else 0.0, hosted=hosted,
        hosted_intervals=len(intervals), to_first_drain=min(entered) - execution_start,
        after_last_drain=execution_end - max(exited), results=results, left_in_source=left,
        dead_letters=dead, phases=_phases(events),
        tally=json.loads(described.get("output") or "{}").get("work", {}).get("tally", {}))


def _phases(events: list[dict[str, Any]]) -> dict[str, float]:
    """Seconds spent in each top-level state, summed over visits (from the history)."""
    totals: dict[str, float] = {}
    open_states: dict[str, float] = {}
    for event in events:
        kind = event["type"]
        if kind.endswith("StateEntered") and "stateEnteredEventDetails" in event:
            open_states[event["stateEnteredEventDetails"]["name"]] = _epoch(event["timestamp"])
        elif kind.endswith("StateExited") and "stateExitedEventDetails" in event:
            name = event["stateExitedEventDetails"]["name"]
            if name in open_states:
                totals[name] = totals.get(name, 0.0) + _epoch(event["timestamp"]) - open_states.pop(name)
    return totals


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


# --- main -----------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per detect call")
    parser.add_argument("--concurrency", type=int, default=4, help="DetectConcurrency")
    parser.add_argument("--workers", type=int, default=2, help="DrainWorkers")
    parser.add_argument("--cap", type=float, default=16.0, help="DetectTps: the backend's rate cap")
    parser.add_argument("--start-seconds", type=float, default=5.0,
                        help="simulated model start time (hosting warm-up)")
    parser.add_argument("--probe", type=int, default=200,
                        help="images for the moto probe (0 skips it)")
    parser.add_argument("--baseline-images", type=int, default=300,
                        help="images for the baseline (at most --images)")
    parser.add_argument("--stock-moto", action="store_true",
                        help="leave moto's SQS clock as it is (receive cost grows with queue depth)")
    parser.add_argument("--timeout", type=float, default=900.0, help="execution timeout, seconds")
    args = parser.parse_args()
    cfg = Config(images=args.images, latency=args.latency, concurrency=args.concurrency,
                 workers=args.workers, cap=args.cap, start_seconds=args.start_seconds,
                 probe=min(args.probe, args.images))

    from batchsight_tools.localcloud.stack import LocalCloud

    if not args.stock_moto:
        speed_up_moto()
    print(f"drain benchmark: {cfg.images} images, latency {cfg.latency * 1000:.0f} ms, "
          f"{cfg.workers} workers x {cfg.concurrency} concurrent, cap {cfg.cap:g}/s, "
          f"simulated start {cfg.start_seconds:g} s, "
          f"{'stock moto' if args.stock_moto else 'moto with the cheap SQS clock'}")
    print(f"ideal throughput {cfg.ideal:.1f} images/s (limited by the {cfg.limited_by})")
    images = make_jpegs(cfg.images)
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        state_dir, baseline_dir = Path(tmp) / "hosting", Path(tmp) / "baseline"
        baseline = run_baseline(cfg, images[:max(1, min(args.baseline_images, cfg.images))],
                                baseline_dir)
        print(f"baseline (backend + limiter, thread pools, no AWS): {baseline:.1f} images/s")

        cloud = LocalCloud(
            parameters={"ModelBackend": PLUGIN, "DrainWorkers": str(cfg.workers),
                        "DetectConcurrency": str(cfg.concurrency), "DetectTps": f"{cfg.cap:g}",
                        "PollSeconds": "1"},
            function_environment={"FIXED_LATENCY_STATE_DIR": str(state_dir),
                                  "FIXED_LATENCY_SECONDS": repr(cfg.latency),
                                  "FIXED_LATENCY_START_SECONDS": repr(cfg.start_seconds),
                                  "POWERTOOLS_LOG_LEVEL": "WARNING",
                                  "POWERTOOLS_METRICS_DISABLED": "true"})
        outputs = cloud.start()
        try:
            ceiling = None
            if cfg.probe:
                ceiling = probe_moto(cloud, outputs, cfg, cfg.workers * cfg.concurrency)
                print(f"moto ceiling (the drain's AWS calls, no model, no limiter, "
                      f"{cfg.workers * cfg.concurrency} threads): {ceiling:.1f} images/s")
            queued = queue_images(cloud, outputs, images, "bench-drain")
            print(f"queued {cfg.images} images in {queued:.1f} s; running one execution ...")
            run = run_pipeline(cloud, outputs, cfg, state_dir, args.timeout)
        finally:
            cloud.stop()

    ratio = report(cfg, run, baseline, ceiling)
    overhead = run.hosted - (cfg.start_seconds + cfg.images / cfg.ideal)
    ok = (run.status == "SUCCEEDED" and run.results == cfg.images
          and ratio >= TARGET_RATIO and overhead < MAX_OVERHEAD_SECONDS)
    return 0 if ok else 1


def report(cfg: Config, run: PipelineRun, baseline: float, ceiling: float | None) -> float:
    throughput = cfg.images / run.drain_window
    detect_throughput = cfg.images / run.detect_window if run.detect_window else 0.0
    ideal_hosted = cfg.start_seconds + cfg.images / cfg.ideal
    overhead = run.hosted - ideal_hosted
    ratio = throughput / cfg.ideal
    tally = ", ".join(f"{k} {v}" for k, v in run.tally.items())
    rows = [
        ("execution", f"{run.status} in {run.wall:.1f} s; {run.results}/{cfg.images} results, "
                      f"{run.left_in_source} left in source, {run.dead_letters} dead letters; "
                      f"tally: {tally}"),
        ("ideal throughput", f"{cfg.ideal:.1f} images/s = min(cap {cfg.cap:g}, "
                             f"{cfg.workers} x {cfg.concurrency} / {cfg.latency:g} s)"),
        ("drain batch bound", f"{cfg.batch_bound:.1f} images/s = {cfg.batch_bound / cfg.ideal:.3f} "
                              f"of ideal (receive {RECEIVE_BATCH}, wait for all; AWS calls free)"),
        ("baseline (no AWS)", f"{baseline:.1f} images/s = {baseline / cfg.ideal:.3f} of ideal"),
    ]
    if ceiling:
        rows.append(("moto ceiling (probe)", f"{ceiling:.1f} images/s = "
                                             f"{ceiling / cfg.ideal:.2f} x ideal"))
    rows += [
        ("drain window", f"{run.drain_window:.2f} s, {run.drain_rounds} Drain round(s) "
                         "(first MapStateEntered -> last MapStateExited)"),
        ("pipeline throughput", f"{throughput:.1f} images/s"),
        ("RATIO TO IDEAL", f"{ratio:.3f} (target >= {TARGET_RATIO}: "
                           f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})"),
        ("ratio to baseline", f"{throughput / baseline:.3f}"),
    ]
    if ceiling:
        rows.append(("ratio to moto ceiling", f"{throughput / ceiling:.3f}"))
    rows += [
        ("detect calls (backend)", f"{run.detect_calls} over {run.detect_window:.2f} s = "
                                   f"{detect_throughput:.1f}/s, mean concurrency "
                                   f"{run.mean_concurrency:.2f} of {cfg.workers * cfg.concurrency}"),
        ("hosted time", f"{run.hosted:.1f} s in {run.hosted_intervals} interval(s)"),
        ("ideal hosted time", f"{ideal_hosted:.1f} s = start {cfg.start_seconds:g} s + "
                              f"{cfg.images} / {cfg.ideal:.1f}"),
        ("HOSTED OVERHEAD", f"{overhead:.1f} s (target < {MAX_OVERHEAD_SECONDS:.0f} s: "
                            f"{'met' if overhead < MAX_OVERHEAD_SECONDS else 'NOT met'})"),
        ("execution start -> drain", f"{run.to_first_drain:.1f} s (check, lock, start, "
                                     f"{cfg.start_seconds:g} s warm-up polled every 1 s)"),
        ("drain end -> execution end", f"{run.after_last_drain:.1f} s (check, stop, release, check)"),
    ]
    rows.append(("what limits", verdict(cfg, run, ratio, ceiling)))
    top = sorted(run.phases.items(), key=lambda kv: -kv[1])[:5]
    rows.append(("time per state", ", ".join(f"{k} {v:.1f} s" for k, v in top)))
    width = max(len(r[0]) for r in rows)
    print()
    print(f"| {'figure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name.ljust(width)} | {value} |")
    return ratio


def verdict(cfg: Config, run: PipelineRun, ratio: float, ceiling: float | None) -> str:
    if ratio >= TARGET_RATIO:
        return f"nothing below the target; the drain runs at the {cfg.limited_by}"
    if ceiling is not None and ceiling < cfg.ideal:
        return (f"moto: it serves the drain's calls for at most {ceiling:.1f} images/s here, "
                f"below the ideal {cfg.ideal:.1f}; lower --cap or raise --latency to measure "
                "the drain itself")
    slots = cfg.workers * cfg.concurrency
    return (f"the drain (moto has headroom): detect calls averaged {run.mean_concurrency:.2f} "
            f"in flight of {slots} slots; a slot is also held for the image's S3/SQS calls and "
            f"each worker waits for its whole receive batch (bound {cfg.batch_bound:.1f}/s)")


if __name__ == "__main__":
    sys.exit(main())
