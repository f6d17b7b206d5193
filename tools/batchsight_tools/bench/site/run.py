"""One site run: the local stack, one model route per extra model, the gateways, their batches.

The stack is the one the integration tests run (LocalCloud: moto server, the real state machine,
each function's ``app.py`` in-process, the ``local`` backend). The first model is the stack's own
(route ``default``); each further one is added with `batchsight model route`, as a person adds
one, naming a model file of its own, so a result's ``model.name`` says which model judged it.
Gateway ``i`` inspects the product of model ``i mod models``; each sends a batch of
``images_per_batch`` images every ``batch_seconds`` (its first at a random phase) for
``minutes``, then the run waits for every result or ``drain_seconds``.
"""
from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchsight_tools.bench.site.gateway import Identity, SimGateway
from batchsight_tools.localcloud.hosting_record import HostingRecord
from batchsight_tools.localcloud.stack import LocalCloud, StackOutputs
from batchsight_tools.models import cli as model_cli
from batchsight_tools.synth import generate

PRODUCTS = ("casting", "pcb", "bottle", "gear", "weld", "label")  # route names after the first, which is default
STARTUP_SECONDS = 2.0  # the local model's warm-up: a start is not free


@dataclass(frozen=True)
class SiteConfig:
    gateways: int = 40
    models: int = 3
    minutes: float = 2.0
    batch_seconds: float = 30.0
    images_per_batch: int = 2
    drain_seconds: float = 240.0
    seed: int = 7

    def route(self, n: int) -> str:
        """The route of model ``n``: the stack's own first, then the products'."""
        return "default" if n == 0 else PRODUCTS[n]


@dataclass
class ModelRun:
    """One model as the run saw it: its gateways, and its hosting from its ledger."""

    route: str
    model_name: str
    gateways: list[SimGateway] = field(default_factory=list)
    starts: int = 0
    hosted_seconds: float = 0.0


@dataclass
class SiteOutcome:
    models: list[ModelRun]
    seconds: float  # from the first batch to the last result (or the deadline)
    executions: int  # every execution of the state machine, the gateways' and their successors


def run(cfg: SiteConfig, work: Path) -> SiteOutcome:
    fitted = _fit_model(work)
    files = {cfg.route(n): work / f"{cfg.route(n)}-detector.npz" for n in range(cfg.models)}
    for file in files.values():
        shutil.copy(fitted, file)
    cloud = LocalCloud(
        parameters={"PollSeconds": "1", "DrainWorkers": "2", "DetectTps": "50", "ModelBackend": "local"},
        function_environment={"LOCAL_MODEL_PATH": str(files["default"]),
                              "LOCAL_MODEL_STATE_DIR": str(work / "hosting"),
                              "LOCAL_MODEL_STARTUP_SECONDS": f"{STARTUP_SECONDS:g}",
                              "POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"})
    with cloud:
        assert cloud.outputs is not None
        models = [_route(cloud.outputs, route, file) for route, file in files.items()]
        clients = {service: cloud.client(service) for service in ("s3", "sqs", "stepfunctions")}
        for i in range(cfg.gateways):
            models[i % cfg.models].gateways.append(_gateway(cloud.outputs, models[i % cfg.models], i, clients))
        started = time.monotonic()
        _drive(cfg, models, work)
        seconds = time.monotonic() - started
        _wait_idle(cloud, cloud.outputs)
        for entry in models:
            _hosting(entry, work)
        executions = sum(len(page["executions"]) for page in clients["stepfunctions"].get_paginator(
            "list_executions").paginate(stateMachineArn=cloud.outputs.state_machine_arn))
    return SiteOutcome(models=models, seconds=seconds, executions=executions)


def _route(out: StackOutputs, route: str, own: Path) -> ModelRun:
    """The model's route (the stack's own for ``default``), judging with its own model file."""
    if route == "default":
        return ModelRun(route, own.name)
    code = model_cli.main(["route", route, "--routes-path", out.extra["ModelRoutesPath"], "--queue-url",
                           out.queue_url, "--endpoint-url", out.endpoint_url, "--set", f"LOCAL_MODEL_PATH={own}",
                           "--set", f"LOCAL_MODEL_STARTUP_SECONDS={STARTUP_SECONDS:g}"])
    if code:
        raise RuntimeError(f"batchsight model route {route} failed (exit {code})")
    return ModelRun(route, own.name)


def _gateway(out: StackOutputs, model: ModelRun, n: int, clients: dict[str, Any]) -> SimGateway:
    queue = out.queue_url if model.route == "default" else _route_queue(clients["sqs"], out, model.route)
    identity = Identity(device=f"gw{n:02d}", line=f"line{n:02d}", route=model.route, model_name=model.model_name,
                        queue_url=queue)
    gateway = SimGateway(identity, clients, buckets=(out.source_bucket, out.final_bucket),
                         state_machine_arn=out.state_machine_arn,
                         result_queue=f"{out.result_queue_prefix}-{identity.device}")
    gateway.start()
    return gateway


def _route_queue(sqs: Any, out: StackOutputs, route: str) -> str:
    stack = out.extra["ModelRoutesPath"].split("/")[2]
    return str(sqs.get_queue_url(QueueName=f"{stack}-work-{route}")["QueueUrl"])


def _drive(cfg: SiteConfig, models: list[ModelRun], work: Path) -> None:
    """Every gateway's batches on one timeline, then wait until every image has its result."""
    gateways = [gateway for entry in models for gateway in entry.gateways]
    rng = random.Random(cfg.seed)
    rounds = max(1, int(cfg.minutes * 60 // cfg.batch_seconds))
    frames = iter(f.path for f in generate(work / "frames", count=len(gateways) * rounds * cfg.images_per_batch,
                                           size=64, seed=cfg.seed))
    plan = sorted((rng.uniform(0, cfg.batch_seconds) + k * cfg.batch_seconds, n)
                  for n in range(len(gateways)) for k in range(rounds))
    started = time.monotonic()
    for at, n in plan:
        time.sleep(max(0.0, at - (time.monotonic() - started)))
        gateways[n].send_batch([next(frames) for _ in range(cfg.images_per_batch)])
    deadline = time.monotonic() + cfg.drain_seconds
    while time.monotonic() < deadline and any(gateway.missing() for gateway in gateways):
        time.sleep(0.5)
    time.sleep(3)  # a result delivered twice would arrive within the drain's batching second
    for gateway in gateways:
        gateway.stop()


def _wait_idle(cloud: LocalCloud, out: StackOutputs, timeout: float = 120.0) -> None:
    sfn, deadline = cloud.client("stepfunctions"), time.monotonic() + timeout
    while time.monotonic() < deadline and sfn.list_executions(stateMachineArn=out.state_machine_arn,
                                                              statusFilter="RUNNING")["executions"]:
        time.sleep(0.5)


def _hosting(entry: ModelRun, work: Path) -> None:
    """Starts and hosted time from the route's own hosting ledger (local_backend.py's folders)."""
    folder = work / "hosting" if entry.route == "default" else work / "hosting" / "routes" / entry.route
    ledger = HostingRecord(folder, startup_seconds=0).ledger
    intervals = [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []
    entry.starts = len(intervals)
    entry.hosted_seconds = sum(i["stopped"] - i["started"] for i in intervals)


def _fit_model(work: Path) -> Path:
    """A model fitted as the tests fit theirs (30 normal frames); each route gets a copy by its name."""
    from batchsight_detector import fit
    from batchsight_tools.synth import generate_training_set

    path = work / "model.npz"
    fit(generate_training_set(30, size=128, seed=3), working_size=64).save(path)
    return path
