"""One demo run: what starts in which order, what stops it, and the exit code.

Why a module of its own: every process and server the demo starts (the moto server, the
SageMaker runtime, the MQTT broker, the HMI connection, the edge program, which runs the local
detector in the edge modes, and the camera) is registered on one ExitStack the moment it
starts, so the normal end, a failure and a signal (signals.py) all stop them the same way,
in reverse order, and then remove the work folder (workdir.py).

Exit codes: 0 passed; 1 a check failed (the one line on stderr says which); 2 a wrong argument;
128 + the signal's number when SIGTERM or SIGINT stopped it.
"""
from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchsight_tools.demo.loop import Loop, give_feedback, pick_alerts, rebuild_and_publish, wait_for_labels
from batchsight_tools.demo.frames import (
    Fitted, Frame, ImageFolder, UsageProblem, camera_frames, fit_model, method_for,
)
from batchsight_tools.demo.plant import opcua_settings, read_handshake
from batchsight_tools.demo.signals import SignalGuard, Stopped
from batchsight_tools.demo.stage import (
    DEVICE, DEVICE_TOPIC, LINE, SITE, TOPICS, edge_config, play_camera, result_documents, wait_for_executions,
    wait_for_results, write_run_report,
)
from batchsight_tools.demo.streams import loop_streams
from batchsight_tools.demo.summary import Run, problems, table
from batchsight_tools.demo.training import check_photographs, fit_version, write_generated
from batchsight_tools.demo.workdir import work_folder
from batchsight_tools.localcloud.broker import MqttBroker
from batchsight_tools.localcloud.gateway import start_gateway, stop_gateway
from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.localcloud.hosting import LambdaHosting, hosting_for
from batchsight_tools.localcloud.operator import Operator
from batchsight_tools.localcloud.stack import LocalCloud, StackOutputs

log = logging.getLogger("batchsight.demo")
EDGE_STOP_SECONDS = 15.0
EXECUTIONS_END_SECONDS = 60.0  # the last execution's stop, after its results are out


def _quietly(step: Callable[..., Any], *args: Any) -> None:
    """A clean-up step that fails is logged; the next one still runs."""
    try:
        step(*args)
    except Exception:  # noqa: BLE001 - clean-up must go on
        log.warning("clean-up step %s failed", getattr(step, "__qualname__", step), exc_info=True)


def run(args: argparse.Namespace, folder: ImageFolder | None, command: str) -> int:
    guard = SignalGuard().install()
    try:
        with ExitStack() as cleanup:
            try:
                code = _run(args, folder, command, guard, cleanup)
            finally:
                guard.closing()  # whatever happened, the clean-up below runs to its end
    except Stopped:
        code = -1
    except UsageProblem as exc:
        print(f"batchsight demo: error: {exc}", file=sys.stderr)
        code = 2
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback in cloud.log
        print(f"batchsight demo: FAILED: {type(exc).__name__}: {exc} (the traceback is in the work folder's "
              "cloud.log: rerun with --keep DIR to keep it)", file=sys.stderr)
        code = 1
    finally:
        guard.restore()
    if guard.received is not None:
        name = Stopped(guard.received).name
        print(f"batchsight demo: stopped by {name}: every process it started has ended and its temp "
              "folders are removed", file=sys.stderr)
        return 128 + guard.received
    return code


def _run(args: argparse.Namespace, folder: ImageFolder | None, command: str, guard: SignalGuard,
         cleanup: ExitStack) -> int:
    started, since = time.time(), datetime.now(UTC)
    work = work_folder(args.keep, cleanup)
    try:
        return _demo(args, folder, command, guard, cleanup, work, started, since)
    except Exception:
        log.exception("the demo failed")
        raise


def _fit(args: argparse.Namespace, folder: ImageFolder | None, work: Path) -> tuple[Fitted, Path | None]:
    """The model, and for the lambda backend the training folder it was fitted on (its dataset's source)."""
    method = method_for(args.method, folder)
    if args.backend != "lambda":
        return fit_model(folder, method=method, train=args.train, size=args.size, seed=args.seed,
                         model_path=work / "model" / "detector.npz"), None
    if folder is not None:
        training, what = check_photographs(folder), str(folder.root / "train")
    else:
        training = write_generated(work / "training", train=args.train, size=args.size, seed=args.seed)
        what = "the generated training folder"
    print("  fitting version 1 on the training folder, as a quality engineer does (docs/models.md):", flush=True)
    return fit_version(training, method=method, output=work / "model" / "detector.npz", what=what), training


def _demo(args: argparse.Namespace, folder: ImageFolder | None, command: str, guard: SignalGuard,
          cleanup: ExitStack, work: Path, started: float, since: datetime) -> int:
    kept = "kept" if args.keep else "removed at the end; --keep DIR keeps it"
    print(f"batchsight demo (work folder {work}, {kept})", flush=True)
    fitted, training = _fit(args, folder, work)
    print(f"  detector: {fitted.description}", flush=True)
    if args.backend_note:
        print(f"  {args.backend_note}", flush=True)
    frames = camera_frames(folder, count=args.count, size=args.size, seed=args.seed,
                           anomaly_rate=args.anomaly_rate, out=work / "camera")
    second: list[Frame] = []
    if args.model_loop:
        frames, second = loop_streams(folder, frames, count=args.count, size=args.size, seed=args.seed,
                                      anomaly_rate=args.anomaly_rate, out=work / "camera")
    of = f" (of {len(folder.test)} test images)" if folder is not None and len(frames) < len(folder.test) else ""
    later = (f"; then {len(second)} more ({sum(f.label == 'anomaly' for f in second)} with defects) for the "
             "model loop's second stream" if second else "")
    print(f"  {len(frames)} images ready{of}, {sum(f.label == 'anomaly' for f in frames)} with defects"
          + (f"; {folder.duplicates} duplicate test images left out" if folder and folder.duplicates else "")
          + later, flush=True)

    with guard.deferred():
        hosting = hosting_for(args.backend, fitted.path, work, args.model_startup, training=training)
        cleanup.callback(_quietly, hosting.close)
    parameters, environment = hosting.stack_settings()
    cloud = LocalCloud(parameters={"PollSeconds": "1", "DrainWorkers": "2", "DetectTps": "50", **parameters},
                       function_environment={**environment, "POWERTOOLS_LOG_LEVEL": "WARNING",
                                             "POWERTOOLS_METRICS_DISABLED": "true"})
    with guard.deferred():
        cleanup.callback(_quietly, cloud.stop)
        outputs = cloud.start()
    print(f"  local AWS (moto) at {outputs.endpoint_url}: the stack of cloud/template.yaml, "
          f"model backend {hosting.backend}", flush=True)
    hosting.deploy(cloud)
    if isinstance(hosting, LambdaHosting):
        print(f"  model {hosting.model_name} version {hosting.deployed[-1]} is current in s3://{hosting.bucket}; the "
              "drain function runs it from each execution's start", flush=True)
    broker = MqttBroker(folder=work / "broker")
    with guard.deferred():
        cleanup.callback(_quietly, broker.close)
        broker.start()
    print(f"  MQTT broker ({broker.kind}) on 127.0.0.1:{broker.port}", flush=True)
    subscriber = Subscriber(broker.port, TOPICS)
    with guard.deferred():
        subscriber.start()
        cleanup.callback(_quietly, subscriber.stop)
    plant, opcua = opcua_settings(work, f"urn:batchsight:{SITE}:{LINE}:{DEVICE}") if args.opcua else ({}, None)
    config, detector_port = edge_config(work, outputs, broker.port, args.inference, fitted.path, plant)
    with guard.deferred():
        edge = start_gateway(config, work / "edge.log")
        cleanup.callback(_quietly, stop_gateway, edge, EDGE_STOP_SECONDS)
    detector = f", its local detector on 127.0.0.1:{detector_port}" if detector_port else ""
    print(f"  edge program running (pid {edge.pid}{detector}); camera dropping images...", flush=True)
    if opcua is not None:
        print("\n".join(opcua.lines()), flush=True)
    camera = _camera(frames, work, args.gap, cleanup)
    finished = wait_for_results(subscriber, frames, camera, edge, args.timeout)
    loop = None
    if second and finished and isinstance(hosting, LambdaHosting):
        wait_for_executions(cloud, outputs.state_machine_arn, EXECUTIONS_END_SECONDS)
        operator = Operator(broker.port, DEVICE_TOPIC)
        with guard.deferred():
            operator.start()
            cleanup.callback(_quietly, operator.stop)
        loop = _model_loop(hosting, cloud, outputs, operator, subscriber, frames, method=fitted.method, work=work)
        frames = frames + second
        print(f"  camera dropping the second stream ({len(second)} images, version {loop.current} current)...",
              flush=True)
        finished = wait_for_results(subscriber, frames, _camera(second, work, args.gap, cleanup), edge, args.timeout)
    time.sleep(1.5)  # let the last batch summary arrive
    if opcua is not None:
        print(read_handshake(opcua), flush=True)
    edge_exit = edge.poll()
    stop_gateway(edge, EDGE_STOP_SECONDS)  # no upload after this: the bucket's count is final
    wait_for_executions(cloud, outputs.state_machine_arn, EXECUTIONS_END_SECONDS)
    still_hosted = hosting.still_hosted(cloud)
    documents = result_documents(cloud, outputs.final_bucket)
    report = (write_run_report(cloud, outputs.final_bucket, since, args.report)
              if args.report is not None else "")
    hint = ""
    if folder is not None and not folder.anomalous:
        hint = (" (pictures of defective parts in train/anomaly would set the threshold, as "
                "'batchsight fit --anomalous' does)")
    elapsed = time.time() - started
    result = Run(frames=frames, subscriber=subscriber, documents=documents, fitted=fitted,
                 floors=(args.min_recall, args.min_precision), hosted_seconds=hosting.hosted_seconds(),
                 elapsed=elapsed, still_hosted=still_hosted, finished=finished,
                 timeout=args.timeout, edge_exit=edge_exit, threshold_hint=hint,
                 hosting=hosting.hosting_note(elapsed), loop=loop)
    print("\n" + "\n".join(table(result, command=command, broker=broker.kind)) + "\n", flush=True)
    if report:
        print(report, flush=True)
    why = problems(result)
    if why:
        print(f"batchsight demo: FAILED in {result.elapsed:.0f} s: {'; '.join(why)}", file=sys.stderr, flush=True)
        return 1
    where = f"; work folder kept in {work}" if args.keep else ""
    print(f"demo passed in {result.elapsed:.0f} s{where}", flush=True)
    return 0


def _camera(frames: list[Frame], work: Path, gap: float, cleanup: ExitStack) -> threading.Thread:
    """A camera thread dropping ``frames``; stopped and joined by the clean-up."""
    stop = threading.Event()
    camera = threading.Thread(target=play_camera, args=(frames, work / "drop", gap, stop), name="camera", daemon=True)
    cleanup.callback(camera.join, 5.0)
    cleanup.callback(stop.set)
    camera.start()
    return camera


def _model_loop(hosting: LambdaHosting, cloud: LocalCloud, outputs: StackOutputs, operator: Operator,
                subscriber: Subscriber, frames: list[Frame], *, method: str, work: Path) -> Loop:
    """Between the streams: feedback, the dataset rebuilt, version 2 published and deployed (loop.py)."""
    assert hosting.dataset is not None
    print("  model loop: an operator answers two alerts at the HMI (MQTT)", flush=True)
    answers = pick_alerts(subscriber, frames)
    give_feedback(operator, answers)
    wait_for_labels(cloud, outputs.final_bucket, answers)
    loop = Loop(answers=answers, before=hosting.dataset)
    if loop.labels:
        rebuild_and_publish(hosting, loop, final_bucket=outputs.final_bucket, method=method, work=work,
                                       aws=("--endpoint-url", cloud.endpoint_url, "--region", "us-east-1"))
    return loop
