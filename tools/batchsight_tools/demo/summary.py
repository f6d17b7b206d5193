"""What the demo proves, as a markdown table (figure | value) and the one line that says why it failed.

Why a module of its own: the table is what the README shows, so it is printed as markdown
headed by the date and the command that measured it, ready to be pasted; and every check
the demo makes (one result document per image, one alert per anomalous result, no model
left hosted, detection at or above the floor) is named here, with the figures it compares.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchsight_tools.demo.frames import Fitted, Frame
from batchsight_tools.demo.versions import loop_problems, loop_rows, version_rows
from batchsight_tools.localcloud.hmi import Subscriber, percentile

if TYPE_CHECKING:
    from batchsight_tools.demo.loop import Loop


@dataclass(frozen=True)
class Detection:
    """Final verdicts (a correction overrules the edge's first one) against the labels."""

    defective: int
    flagged: int
    found: int

    @property
    def recall(self) -> float | None:
        return self.found / self.defective if self.defective else None

    @property
    def precision(self) -> float | None:
        return self.found / self.flagged if self.flagged else None


def detection(frames: list[Frame], subscriber: Subscriber) -> Detection:
    verdicts = {m["file_name"]: bool(m["is_anomalous"]) for _, m in subscriber.results.values()}
    verdicts.update({m["file_name"]: bool(m["is_anomalous"]) for _, m in subscriber.corrections.values()})
    return Detection(defective=sum(f.label == "anomaly" for f in frames),
                     flagged=sum(1 for f in frames if verdicts.get(f.name)),
                     found=sum(1 for f in frames if f.label == "anomaly" and verdicts.get(f.name)))


@dataclass
class Run:
    """Everything the demo observed, gathered once the camera and the edge are done."""

    frames: list[Frame]
    subscriber: Subscriber
    documents: dict[str, dict[str, Any]]   # image id -> result document (with "_copies")
    fitted: Fitted
    floors: tuple[float, float]            # recall, precision
    hosted_seconds: float | None
    elapsed: float
    still_hosted: bool
    finished: bool
    timeout: float
    edge_exit: int | None
    threshold_hint: str = ""               # what to try when recall is below the floor
    hosting: str = ""                      # the hosted-time row, as the backend's hosting words it
    loop: Loop | None = None               # what --model-loop did

    @property
    def sent_to_cloud(self) -> int:
        return sum(1 for _, m in self.subscriber.results.values() if m["result_key"])

    @property
    def one_document_each(self) -> bool:
        return (len(self.documents) == self.sent_to_cloud
                and all(d.get("_copies") == 1 for d in self.documents.values()))

    @property
    def anomalous_results(self) -> int:
        results = self.subscriber.results.values()
        return (sum(1 for _, m in results if m["is_anomalous"])
                + sum(1 for _, m in self.subscriber.corrections.values() if m["is_anomalous"]))


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def table(run: Run, *, command: str, broker: str) -> list[str]:
    """The markdown summary, headed by the date, the command and the machine."""
    s = run.subscriber
    found = detection(run.frames, s)
    by_name = {f.name: f for f in run.frames}
    latencies = sorted(arrived - by_name[m["file_name"]].dropped_at for arrived, m in s.results.values()
                       if m["file_name"] in by_name)
    at_edge = sum(1 for _, m in s.results.values() if m["judged_by"] == "edge")
    copies = sum(d.get("_copies", 1) - 1 for d in run.documents.values())
    documents = (f"{len(run.documents)}, one per image sent to the cloud" if run.one_document_each else
                 f"{len(run.documents)} for {run.sent_to_cloud} images sent to the cloud ({copies} extra copies)")
    hosted = run.hosting or (f"{run.hosted_seconds:.1f} s of a {run.elapsed:.0f} s run" if run.hosted_seconds
                             is not None else "endpoint created for each batch and deleted after it")
    rows = [
        ("images dropped", f"{len(run.frames)} ({found.defective} with defects)"),
        ("detector", run.fitted.description),
        ("result documents in the final bucket", documents),
        ("results on MQTT", f"{len(s.results)} ({at_edge} judged at the edge)"),
        ("corrections (the cloud overruled the edge)", f"{len(s.corrections)}"),
        ("alerts", f"{len(s.alerts)}: {found.found} of the {found.defective} defective parts, "
                   f"{found.flagged - found.found} false alarm{'' if found.flagged - found.found == 1 else 's'}"),
        ("recall / precision on the labels", f"{_share(found.recall)} / {_share(found.precision)} "
                                             f"(floor {run.floors[0]:.2f} / {run.floors[1]:.2f})"),
        ("batches (executions)", f"{len(s.batches)}"),
        ("hosted model time", hosted),
        *(loop_rows(run.loop) if run.loop is not None else []),
        *version_rows(run),
        ("drop-to-result latency p50 / p95", f"{percentile(latencies, 50):.1f} s / {percentile(latencies, 95):.1f} s"
         if latencies else "-"),
        ("duplicate MQTT messages", f"{s.duplicates}"),
    ]
    heading = (f"Measured {dt.date.today().isoformat()} with `{command}` "
               f"({os.cpu_count()} cores, {broker} broker)")
    return [heading, "", "| figure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]


def problems(run: Run) -> list[str]:
    """Why the demo failed, one short clause each; empty when it passed."""
    s = run.subscriber
    found = detection(run.frames, s)
    why = []
    if run.edge_exit is not None:
        why.append(f"the edge program exited with code {run.edge_exit} (its log is edge.log in the work folder, "
                   "which --keep DIR keeps)")
    elif not run.finished:
        why.append(f"{len(s.results)} of {len(run.frames)} images got a result within --timeout {run.timeout:.0f} s")
    if not run.one_document_each:
        why.append(f"the final bucket holds {len(run.documents)} result documents for {run.sent_to_cloud} images "
                   "sent to the cloud, not one each")
    if len(s.alerts) != run.anomalous_results:
        why.append(f"{len(s.alerts)} alerts for {run.anomalous_results} anomalous results")
    if s.duplicates:
        why.append(f"{s.duplicates} duplicate MQTT messages")
    if run.still_hosted:
        why.append("the model was left hosted (a cost invariant is broken)")
    if found.recall is not None and found.recall < run.floors[0]:
        why.append(f"recall {found.recall:.2f} ({found.found} of {found.defective} defective parts found) is below "
                   f"the floor {run.floors[0]:.2f}{run.threshold_hint}")
    if found.precision is not None and found.precision < run.floors[1]:
        why.append(f"precision {found.precision:.2f} ({found.found} of {found.flagged} alerts were defective "
                   f"parts) is below the floor {run.floors[1]:.2f}")
    return why + loop_problems(run)
