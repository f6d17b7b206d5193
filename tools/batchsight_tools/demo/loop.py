"""The model loop between the two streams: operator feedback, the dataset rebuilt, version 2 made and deployed.

Why a module of its own: this is issue #17's loop as a quality engineer runs it, in order, with
the real programs: an operator answers two alerts at the HMI (one defect confirmed, one false
alarm) over MQTT; the gateway writes each answer as a label file beside the result in the final
bucket; `batchsight dataset build` rebuilds the dataset from the training folder plus that
feedback; `batchsight model fit` fits on its training split; `model publish` measures the
candidate on the held-out split and gates it against version 1 on the same images (it may
refuse: then version 1 stays current and the summary says so); `model deploy` makes version 2
current, which the ``lambda`` backend reads at the next execution's start. The second stream,
dropped afterwards, is judged by whichever version is current.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchsight_tools.demo.frames import Fitted, Frame
from batchsight_tools.demo.stage import LINE, SITE, result_documents
from batchsight_tools.demo.training import fit_version
from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.localcloud.hosting import DatasetInfo, LambdaHosting
from batchsight_tools.localcloud.operator import Operator
from batchsight_tools.localcloud.stack import LocalCloud

REPLY_SECONDS = 20.0
LABEL_SECONDS = 30.0
LABEL_SUFFIX = ".label.manifest"


@dataclass
class Answer:
    """One operator answer: to which alert, what it said, what the gateway replied."""

    image_id: str
    file_name: str
    verdict: str
    label: str
    reply: dict[str, Any] = field(default_factory=dict)
    label_key: str = ""      # the label file in the final bucket, once there

    @property
    def taken(self) -> bool:
        return bool(self.reply.get("ok"))


@dataclass
class Loop:
    """What the loop did, for the summary."""

    answers: list[Answer]
    before: DatasetInfo
    after: DatasetInfo | None = None
    fitted: Fitted | None = None
    candidate: str | None = None     # the version published, None when the gate refused (or nothing ran)
    gate: str = ""                   # the gate's line: passed with its figures, or the refusal
    current: str = "1"               # the version current for the second stream

    @property
    def labels(self) -> int:
        return sum(1 for a in self.answers if a.label_key)


def pick_alerts(subscriber: Subscriber, frames: list[Frame]) -> list[Answer]:
    """What an operator at the line answers: the first alert on a defective part ("confirmed") and
    the first on a good part ("false_alarm"), in the order the alerts arrived; they look at the part,
    so the frame's label is what they see."""
    by_name = {f.name: f for f in frames}
    answers: list[Answer] = []
    for verdict, label in (("confirmed", "anomaly"), ("false_alarm", "normal")):
        for _, message in sorted(subscriber.alerts.values(), key=lambda item: item[0]):
            frame = by_name.get(message["file_name"])
            if frame is not None and frame.label == label:
                said = frame.note or ("defect" if label == "anomaly" else "good part")
                answers.append(Answer(message["image_id"], frame.name, verdict, said))
                break
    return answers


def give_feedback(operator: Operator, answers: list[Answer]) -> None:
    """Publish the answers as the HMI does and keep the gateway's replies."""
    for answer in answers:
        operator.answer(answer.image_id, answer.verdict, label=answer.label)
        print(f"  OPERATOR   {answer.file_name:<18} {answer.verdict.replace('_', ' ')} ({answer.label})", flush=True)
    replies = operator.wait_for_replies([a.image_id for a in answers], REPLY_SECONDS)
    for answer in answers:
        answer.reply = replies.get(answer.image_id, {})


def wait_for_labels(cloud: LocalCloud, bucket: str, answers: list[Answer]) -> None:
    """Until the gateway has written each taken answer as a label file beside the image's result."""
    documents = result_documents(cloud, bucket)
    s3 = cloud.client("s3")
    wanted = {}
    for answer in answers:
        document = documents.get(answer.image_id)
        if answer.taken and document is not None:
            wanted[answer.image_id] = document["image"]["key"].rsplit(".", 1)[0] + LABEL_SUFFIX
    deadline = time.monotonic() + LABEL_SECONDS
    while wanted and time.monotonic() < deadline:
        for answer in answers:
            key = wanted.get(answer.image_id)
            if key and s3.list_objects_v2(Bucket=bucket, Prefix=key).get("KeyCount"):
                answer.label_key = key
        if all(a.label_key for a in answers if a.image_id in wanted):
            return
        time.sleep(0.5)


def rebuild_and_publish(hosting: LambdaHosting, loop: Loop, *, final_bucket: str, method: str, work: Path,
                        aws: tuple[str, ...]) -> None:
    """The dataset rebuilt with the feedback, version 2 fitted, published (gated) and deployed."""
    print("  rebuilding the dataset with the operators' answers, fitting and publishing version 2:", flush=True)
    loop.after = hosting.build_dataset(feedback_bucket=final_bucket, site=SITE, line=LINE)
    loop.fitted = fit_version(hosting.training, method=method, output=work / "model" / "candidate.npz",
                              what=f"dataset {hosting.dataset_name} with the feedback", dataset=hosting.dataset_uri,
                              aws=aws, split=loop.after.training)
    version, outcome = hosting.publish(loop.fitted.path)
    if version is None:
        loop.gate = outcome.error.split(": ", 1)[-1]
        print(f"  version 2 refused by the gate; version {loop.current} stays current", flush=True)
        return
    loop.candidate = version
    loop.gate = next((line for line in outcome.out if line.startswith(("gate passed", "gate overridden"))), "")
    hosting.make_current(version)
    loop.current = version
