"""``batchsight status``: what the gateway holds and what the component last knew, for a person
(a table with local times and ages) or a program (``--json``, ISO-8601 times in UTC).

Everything comes from files: the journal (images per state, the batch backlog, the last batch,
the bytes held) and the status file the running component keeps (status_file.py: its alarms
and the cloud link's state), so it works with the component stopped and without a broker.
"""
from __future__ import annotations

import shutil
from datetime import datetime, UTC
from typing import Any

from batchsight import status_file
from batchsight.config import Config
from batchsight.journal import Journal

JUDGEMENT_LABELS = {"judged_at_edge": "judged at the edge", "audited": "audited by the cloud",
                    "corrected": "corrected by the cloud"}


def iso(moment: float | None) -> str | None:
    """An epoch time as ISO-8601 in UTC, the way the MQTT payloads write times."""
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _age(moment: float | None, now: float) -> float | None:
    return None if moment is None else round(max(0.0, now - moment), 1)


def _component(config: Config, now: float) -> dict[str, Any] | None:
    last = status_file.read(config.status_path)
    if last is None:
        return None
    payload, written = last
    age = now - written
    return {"state": str(payload.get("state", "unknown")), "cloud": str(payload.get("cloud", "unknown")),
            "alarms": [str(a) for a in payload.get("alarms", [])],
            "inference": payload.get("inference"), "judging": payload.get("judging"),
            "detector_problem": payload.get("detector_problem") or "",
            **{k: str(payload.get(k) or "") for k in ("model", "model_version", "shadow_model",
                                                      "shadow_model_version")},
            "written_at": iso(written), "age_seconds": _age(written, now),
            "stale": payload.get("state") == "running" and age > status_file.STALE_AFTER_SECONDS}


def gather(config: Config, journal: Journal, *, now: float) -> dict[str, Any]:
    """The machine form; ``render`` turns it into the table."""
    waiting, oldest = journal.waiting()
    batch = journal.last_batch()
    last_batch = None if batch is None else {
        "batch_id": batch["batch_id"], "image_count": batch["image_count"],
        "created_at": iso(batch["created_at"]), "age_seconds": _age(batch["created_at"], now),
        "execution_arn": batch["execution_arn"], "summarized_at": iso(batch["summarized_at"])}
    usage = shutil.disk_usage(config.work_folder)
    return {"v": 1, "site": config.site, "line": config.line, "device": config.device,
            "journal": str(config.journal_path), "generated_at": iso(now),
            "component": _component(config, now),
            "counts": journal.counts(), "judgements": journal.judgements(),
            "waiting_for_batch": waiting, "oldest_waiting_since": iso(oldest),
            "oldest_waiting_age_seconds": _age(oldest, now),
            "last_batch": last_batch,
            "held_bytes": journal.pending_bytes(), "quota_bytes": config.disk.quota_bytes,
            "work_folder_free_bytes": usage.free, "min_free_bytes": config.disk.min_free_bytes}


# --- the table --------------------------------------------------------------------------------

def local_time(text: str | None) -> str:
    moment = _epoch(text)
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def when(text: str | None, age: float | None) -> str:
    """A local time and how long ago, e.g. ``2026-11-23 10:58:01 CET (4 min 2 s ago)``."""
    return f"{local_time(text)} ({duration(age or 0.0)} ago)"


def size(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _component_lines(status: dict[str, Any]) -> list[tuple[str, str]]:
    component = status["component"]
    if component is None:
        unknown = "unknown: the component has written no status in the work folder yet (it writes one when running)"
        return [("Component", unknown), ("Cloud link", "unknown"), ("Alarms", "unknown")]
    written = when(component["written_at"], component["age_seconds"])
    known = f" (as last known, {duration(component['age_seconds'] or 0.0)} ago)"
    if component["stale"]:
        state = (f"not answering: its last status, \"running\", is from {written}; it is stopped or "
                 "stuck (see its log)")
    elif component["state"] == "running":
        state, known = f"running, its status written {written}", ""
    else:
        state = f"{component['state']} since {written}"
    alarms = component["alarms"]
    rows = [("Component", state), ("Cloud link", component["cloud"] + known),
            ("Alarms", (f"{len(alarms)}" if alarms else "none") + known)]
    rows += [("", f"! {alarm}") for alarm in alarms]
    if component.get("judging"):
        rows.append(("Judging", f"{component['judging']} (inference.mode {component.get('inference')})"))
    for label, key in (("Model", "model"), ("Shadow model", "shadow_model")):
        if component.get(key):
            version = component.get(f"{key}_version")
            rows.append((label, f"{component[key]} version {version}" if version else component[key]))
    return rows


def render(status: dict[str, Any]) -> str:
    counts, judgements = status["counts"], status["judgements"]
    digits = max(len(str(n)) for n in [*counts.values(), *judgements.values()])
    rows: list[tuple[str, str]] = [("Gateway", f"{status['site']}/{status['line']}/{status['device']}")]
    rows += _component_lines(status)
    rows += [("", ""), ("Images by state", "")]
    rows += [(f"  {state}", f"{count:>{digits}}") for state, count in counts.items()]
    rows.append(("Judgements", ""))
    rows += [(f"  {JUDGEMENT_LABELS.get(k, k)}", f"{v:>{digits}}") for k, v in judgements.items()]
    rows.append(("", ""))
    waiting = status["waiting_for_batch"]
    rows.append(("Waiting for batch", "nothing" if not waiting else
                 f"{waiting} image{'s' if waiting != 1 else ''}, the oldest since "
                 f"{when(status['oldest_waiting_since'], status['oldest_waiting_age_seconds'])}"))
    batch = status["last_batch"]
    if batch is None:
        rows.append(("Last batch", "none yet"))
    else:
        progress = ("summary published" if batch["summarized_at"] else
                    "execution started, results pending" if batch["execution_arn"] else "not submitted yet")
        rows.append(("Last batch", f"{batch['batch_id']}: {batch['image_count']} images, cut "
                                   f"{when(batch['created_at'], batch['age_seconds'])}, {progress}"))
    held, quota = status["held_bytes"], status["quota_bytes"]
    rows.append(("Held on gateway", f"{size(held)} of the {size(quota)} quota ({100 * held / quota:.1f} %)"))
    rows.append(("Free space", f"{size(status['work_folder_free_bytes'])} in the work folder "
                               f"(new images wait below {size(status['min_free_bytes'])})"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}".rstrip() for name, value in rows)
