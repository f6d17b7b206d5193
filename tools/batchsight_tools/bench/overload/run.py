"""One overload run: the local cloud with a slow model and a ceiling, the feeder, the sampler.

The same stack the integration tests run (LocalCloud: moto server, the real state machine, each
function's ``app.py`` in-process, the local model backend): one unit of capacity drains
``unit_tps`` images a second (DetectTps, shared by DrainWorkers workers), scaling may go to
``units`` (MaxScaleUnits), a backlog should clear within a minute (BacklogTargetMinutes), and the
drain function's timeout is 60 s, so rounds last about 30 s, long enough to measure a rate. The
gateway side is the real one: its Housekeeper and LossCheck read the pipeline status as a gateway
does, and an execution is started whenever images wait and none runs, as a gateway's upload does.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from batchsight.config import config_from_dict
from batchsight.housekeeping import Housekeeper
from batchsight.journal import Journal
from batchsight.lost_images import LossCheck
from batchsight_tools.bench.overload.feed import Feed, feed
from batchsight_tools.localcloud.local_backend import LocalBackend
from batchsight_tools.localcloud.stack import LocalCloud, StackOutputs
from batchsight_tools.synth import generate

DRAIN_WORKERS = 2
DRAIN_TIMEOUT_SECONDS = 60  # rounds of about 30 s: CheckWork measures a rate over 20 s at least


@dataclass(frozen=True)
class OverloadConfig:
    minutes: float  # how long the line feeds
    rate: float  # images a second the line sends
    units: int  # MaxScaleUnits
    unit_tps: float  # DetectTps: what one unit drains a second
    sample_seconds: float = 5.0
    drain_minutes: float = 20.0  # at most this long for the backlog to clear after the feed

    @property
    def images(self) -> int:
        return max(1, round(self.minutes * 60 * self.rate))


@dataclass(frozen=True)
class Sample:
    """The pipeline as seen at one moment (seconds since the feed began)."""

    at: float
    sent: int
    results: int
    backlog: int  # visible and in flight in the image queue
    dead_letters: int
    gateway_alarm: str  # what the gateway's housekeeping said ("" for nothing)


@dataclass
class Outcome:
    samples: list[Sample] = field(default_factory=list)
    feed: Feed = field(default_factory=Feed)
    result_ids: list[str] = field(default_factory=list)
    rewritten: int = 0  # result documents written more than once (versions beyond the first)
    started_at: float = 0.0  # monotonic, when the feed began
    executions: int = 0
    hosting_state: str = ""
    hosted_seconds: float = 0.0


def run(cfg: OverloadConfig, work: Path) -> Outcome:
    """Feed the pipeline for ``cfg.minutes``, then let it drain; everything seen on the way."""
    model = _fit_model(work)
    cloud = LocalCloud(
        parameters={"PollSeconds": "1", "DrainWorkers": str(DRAIN_WORKERS), "DetectTps": f"{cfg.unit_tps:g}",
                    "ModelBackend": "local", "MaxScaleUnits": str(cfg.units), "BacklogTargetMinutes": "1"},
        function_environment={"LOCAL_MODEL_PATH": str(model), "LOCAL_MODEL_STATE_DIR": str(work / "hosting"),
                              "LOCAL_MODEL_STARTUP_SECONDS": "1", "POWERTOOLS_LOG_LEVEL": "WARNING"},
        timeouts={"DrainFunction": DRAIN_TIMEOUT_SECONDS})
    paths = [f.path for f in generate(work / "frames", count=cfg.images, size=64, seed=7)]
    with cloud:
        assert cloud.outputs is not None
        return _drive(cfg, cloud, cloud.outputs, paths, work)


def _drive(cfg: OverloadConfig, cloud: LocalCloud, out: StackOutputs, paths: list[Path], work: Path) -> Outcome:
    """Feed, sample every ``sample_seconds`` until the feed ended and the pipeline is idle."""
    gateway = config_from_dict({
        "drop_folder": str(work / "drop"), "work_folder": str(work / "gateway"),
        "aws": {"source_bucket": out.source_bucket, "final_bucket": out.final_bucket,
                "queue_url": out.queue_url, "state_machine_arn": out.state_machine_arn}})
    keeper = Housekeeper(gateway, Journal(gateway.journal_path), losses=LossCheck(gateway, s3=cloud.client("s3")))
    outcome, stop = Outcome(started_at=time.monotonic()), threading.Event()
    feeder = threading.Thread(target=feed, daemon=True, kwargs={
        "s3": cloud.client("s3"), "sqs": cloud.client("sqs"), "bucket": out.source_bucket,
        "queue_url": out.queue_url, "paths": paths, "rate": cfg.rate, "into": outcome.feed, "stop": stop})
    feeder.start()
    deadline = time.monotonic() + cfg.minutes * 60 + cfg.drain_minutes * 60
    try:
        while time.monotonic() < deadline:
            time.sleep(cfg.sample_seconds)
            sample = _sample(cloud, out, outcome, keeper)
            outcome.samples.append(sample)
            running = _running(cloud, out)
            if sample.backlog and not running:
                _start(cloud, out, outcome)
            elif outcome.feed.done.is_set() and not running and not sample.backlog:
                break
    finally:
        stop.set()
        feeder.join()
    _finish(cloud, out, outcome, work)
    return outcome


def _sample(cloud: LocalCloud, out: StackOutputs, outcome: Outcome, keeper: Housekeeper) -> Sample:
    """The queue, the results and the gateway's word, now."""
    sqs = cloud.client("sqs")
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    queue = sqs.get_queue_attributes(QueueUrl=out.queue_url, AttributeNames=names)["Attributes"]
    dead = sqs.get_queue_attributes(QueueUrl=out.dead_letter_queue_url, AttributeNames=names[:1])["Attributes"]
    alarm = keeper.resubmit_overdue(time.time()) or ""
    return Sample(at=time.monotonic() - outcome.started_at, sent=len(outcome.feed.sent),
                  results=len(_results(cloud, out)), backlog=sum(int(queue[n]) for n in names),
                  dead_letters=int(dead[names[0]]), gateway_alarm=alarm)


def _results(cloud: LocalCloud, out: StackOutputs) -> list[str]:
    """The image ids of the result documents in the final bucket (one per image expected)."""
    ids = []
    for page in cloud.client("s3").get_paginator("list_objects_v2").paginate(Bucket=out.final_bucket,
                                                                             Prefix="results/"):
        ids += [o["Key"].rsplit("/", 1)[-1][:-5] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
    return ids


def _rewritten(cloud: LocalCloud, out: StackOutputs) -> int:
    """Versions of result documents beyond each one's first (the final bucket is versioned): a key
    is one per image by construction, so only its versions show a result written twice."""
    versions = 0
    for page in cloud.client("s3").get_paginator("list_object_versions").paginate(Bucket=out.final_bucket,
                                                                                 Prefix="results/"):
        versions += sum(1 for v in page.get("Versions", []) if v["Key"].endswith(".json"))
    return versions - len(_results(cloud, out))


def _running(cloud: LocalCloud, out: StackOutputs) -> bool:
    return bool(cloud.client("stepfunctions").list_executions(
        stateMachineArn=out.state_machine_arn, statusFilter="RUNNING")["executions"])


def _start(cloud: LocalCloud, out: StackOutputs, outcome: Outcome) -> None:
    """Start an execution as a gateway does after an upload (the model lock keeps it to one drain)."""
    outcome.executions += 1
    cloud.client("stepfunctions").start_execution(stateMachineArn=out.state_machine_arn,
                                                  name=f"overload-{outcome.executions}",
                                                  input='{"v": 1, "trigger": "manual"}')


def _finish(cloud: LocalCloud, out: StackOutputs, outcome: Outcome, work: Path) -> None:
    """What is left once idle: the results, every execution (hand-overs too), the model's state."""
    outcome.result_ids = _results(cloud, out)
    outcome.rewritten = _rewritten(cloud, out)
    sfn = cloud.client("stepfunctions")
    outcome.executions = sum(len(p["executions"]) for p in sfn.get_paginator("list_executions").paginate(
        stateMachineArn=out.state_machine_arn))
    backend = LocalBackend(model_path=work / "model.npz", state_dir=work / "hosting",
                           startup_seconds=0, start_timeout_seconds=1)
    outcome.hosting_state = backend._describe()[0]
    outcome.hosted_seconds = backend.hosted_seconds()


def _fit_model(work: Path) -> Path:
    """The local backend's model, fitted as the tests fit it (30 normal frames)."""
    from batchsight_detector import fit
    from batchsight_tools.synth import generate_training_set

    path = work / "model.npz"
    fit(generate_training_set(30, size=128, seed=3), working_size=64).save(path)
    return path
