"""One execution of the real state machine, read back from its history, the backend and the buckets.

The drain window is from the first ``Drain`` MapStateEntered to the last MapStateExited in the
execution history; the detect calls and their concurrency are what the backend recorded
(``fixed_latency_backend.CALLS``); hosted time is the backend's start/stop ledger.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from batchsight_tools.bench.drain import fixed_latency_backend
from batchsight_tools.bench.drain.fixed_latency_backend import FixedLatencyBackend
from batchsight_tools.bench.drain.setup import DrainConfig
from batchsight_tools.localcloud.stack import LocalCloud, StackOutputs


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


def run_pipeline(cloud: LocalCloud, outputs: StackOutputs, cfg: DrainConfig, state_dir: Path,
                 timeout: float) -> PipelineRun:
    """Start one execution, wait for it to end, and read what it did."""
    fixed_latency_backend.CALLS.clear()
    described, wall, events = _execute(cloud, outputs, timeout)
    entered, exited = _drain_times(events, "MapStateEntered"), _drain_times(events, "MapStateExited")
    if not entered or not exited:
        raise SystemExit(f"execution {described['status']}: no Drain state in its history "
                         f"({described.get('cause', '')})")
    calls = list(fixed_latency_backend.CALLS)
    detect_window = max(c[1] for c in calls) - min(c[0] for c in calls) if calls else 0.0
    busy = sum(c[1] - c[0] for c in calls)
    ledger = FixedLatencyBackend(state_dir=state_dir, latency_seconds=cfg.latency,
                                 startup_seconds=cfg.start_seconds, start_timeout_seconds=60)
    intervals = ledger.intervals()
    results, left, dead = _what_is_left(cloud, outputs)
    return PipelineRun(
        status=described["status"], wall=wall, drain_window=max(exited) - min(entered),
        drain_rounds=len(entered), detect_window=detect_window, detect_calls=len(calls),
        mean_concurrency=busy / detect_window if detect_window else 0.0,
        hosted=sum(i["stopped"] - i["started"] for i in intervals), hosted_intervals=len(intervals),
        to_first_drain=min(entered) - _epoch(events[0]["timestamp"]),
        after_last_drain=_epoch(events[-1]["timestamp"]) - max(exited), results=results, left_in_source=left,
        dead_letters=dead, phases=_phases(events),
        tally=json.loads(described.get("output") or "{}").get("work", {}).get("tally", {}))


def _execute(cloud: LocalCloud, outputs: StackOutputs,
             timeout: float) -> tuple[dict[str, Any], float, list[dict[str, Any]]]:
    """The execution as described at its end, its wall time, and its history's events."""
    sfn = cloud.client("stepfunctions")
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
    return described, wall, events


def _drain_times(events: list[dict[str, Any]], kind: str) -> list[float]:
    """When the ``Drain`` map state was entered (or exited), once per round."""
    details = "stateEnteredEventDetails" if kind.endswith("Entered") else "stateExitedEventDetails"
    return [_epoch(e["timestamp"]) for e in events if e["type"] == kind and e[details]["name"] == "Drain"]


def _what_is_left(cloud: LocalCloud, outputs: StackOutputs) -> tuple[int, int, int]:
    """Result documents in the final bucket, objects left in the source, dead letters."""
    s3, sqs = cloud.client("s3"), cloud.client("sqs")
    results = sum(1 for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=outputs.final_bucket, Prefix="results/")
        for o in page.get("Contents", []) if o["Key"].endswith(".json"))
    left = s3.list_objects_v2(Bucket=outputs.source_bucket).get("KeyCount", 0)
    dead = int(sqs.get_queue_attributes(QueueUrl=outputs.dead_letter_queue_url,
                                        AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])
    return results, left, dead


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
