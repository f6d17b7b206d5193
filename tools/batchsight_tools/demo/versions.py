"""Which model version judged which images, and the model loop's rows and checks, for the summary.

Why a module of its own: "every result names ``model.name`` and ``model.version``" is what the
model registry promises, so the summary counts the versions from the result documents in the
final bucket (not from what the demo meant to deploy), says which stream's images each judged,
and fails the demo when an image of the second stream was judged by another version than the
one deployed for it.
"""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from batchsight_tools.demo.streams import DUST

if TYPE_CHECKING:
    from batchsight_tools.demo.frames import Frame
    from batchsight_tools.demo.loop import Loop
    from batchsight_tools.demo.summary import Run

STREAMS = {1: "the first stream", 2: "the second stream"}


def judged_by(documents: dict[str, dict[str, Any]]) -> dict[tuple[str, str], list[str]]:
    """(model name, version) -> image ids, from the result documents; "" when a model has no version."""
    versions: dict[tuple[str, str], list[str]] = {}
    for image_id, document in documents.items():
        model = document.get("model", {})
        versions.setdefault((str(model.get("name", "?")), str(model.get("version") or "")), []).append(image_id)
    return versions


def version_rows(run: Run) -> list[tuple[str, str]]:
    """One row per model version that judged images (none for a model without versions)."""
    names = {image_id: m["file_name"] for image_id, (_, m) in run.subscriber.results.items()}
    frames = {f.name: f for f in run.frames}
    rows = []
    for (model, version), image_ids in sorted(judged_by(run.documents).items(), key=lambda item: _order(item[0])):
        if not version:
            continue
        judged = [frames[names[i]] for i in image_ids if names.get(i) in frames]
        streams = Counter(frame.stream for frame in judged)
        where = ", ".join(f"{count} of {STREAMS[stream]}'s {sum(f.stream == stream for f in run.frames)}"
                          for stream, count in sorted(streams.items())) if run.loop is not None else \
            f"{len(judged)} of the {len(run.frames)} dropped"
        anomalous = [i for i in image_ids if run.documents[i].get("result", {}).get("IsAnomalous")]
        dusty = [frame for frame in judged if frame.note == DUST]
        dust = ""
        if dusty:
            flagged = sum(_alerted(run, frame) for frame in dusty)
            parts = "the good part" if len(dusty) == 1 else f"{flagged} of the {len(dusty)} good parts"
            said = ("alerted" if flagged else "not alerted") if len(dusty) == 1 else "alerted"
            dust = f"; {parts} photographed through {DUST}: {said}"
        rows.append((f"judged by {model} version {version}",
                     f"{len(image_ids)} images ({where}), {len(anomalous)} alerts{dust}"))
    return rows


def _order(key: tuple[str, str]) -> tuple[str, int]:
    return key[0], int(key[1]) if key[1].isdigit() else 0


def _alerted(run: Run, frame: Frame) -> bool:
    return any(m["file_name"] == frame.name for _, m in run.subscriber.alerts.values())


def loop_rows(loop: Loop) -> list[tuple[str, str]]:
    answers = ", ".join(f"{a.file_name} {a.verdict.replace('_', ' ')}" + ("" if a.taken else " (refused)")
                        for a in loop.answers) or "none (no alert to answer)"
    rows = [("operator feedback over MQTT", f"{len(loop.answers)} answers: {answers}; {loop.labels} label files "
                                            "in the final bucket")]
    after = loop.after
    if after is not None:
        grew = after.from_feedback - loop.before.from_feedback
        rows.append(("dataset rebuilt (batchsight dataset build)",
                     f"{loop.before.images} images -> {after.images} (+{grew} from operator feedback; {after.normal} "
                     f"normal, {after.anomaly} anomaly), {after.uri}"))
    if loop.fitted is not None:
        rows.append(("version 2 candidate", loop.fitted.description))
    if loop.candidate is not None:
        rows.append((f"version {loop.candidate}", f"published and deployed; {loop.gate or 'no gate line printed'}"))
    elif loop.after is not None:
        rows.append(("version 2", f"refused by the gate, version {loop.current} stayed current: {loop.gate}"))
    return rows


def loop_problems(run: Run) -> list[str]:
    """Why the loop failed: an answer not taken or not written, the dataset not grown, a wrong version."""
    loop = run.loop
    if loop is None:
        return []
    why = []
    refused = [a for a in loop.answers if not a.taken]
    if refused:
        why.append("the gateway did not take the operator's answer on " + ", ".join(
            f"{a.file_name} ({a.reply.get('error') or 'no reply'})" for a in refused))
    if loop.labels < len(loop.answers) - len(refused):
        why.append(f"{loop.labels} of {len(loop.answers) - len(refused)} taken answers became label files in the "
                   "final bucket")
    if loop.after is not None and loop.after.from_feedback - loop.before.from_feedback != loop.labels:
        why.append(f"the rebuilt dataset holds {loop.after.from_feedback - loop.before.from_feedback} labels from "
                   f"operator feedback, not the {loop.labels} written")
    names = {image_id: m["file_name"] for image_id, (_, m) in run.subscriber.results.items()}
    second = {f.name for f in run.frames if f.stream == 2}
    wrong = [names[i] for (_, version), ids in judged_by(run.documents).items() for i in ids
             if names.get(i) in second and version != loop.current]
    if wrong:
        why.append(f"{len(wrong)} images of the second stream (e.g. {wrong[0]}) were judged by another version than "
                   f"version {loop.current}, current since before they were dropped")
    return why
