"""The model index (contracts/schemas/model_index.schema.json) and the changes a command makes to it.

Why pure functions on the document, apart from S3: each change (a version added, deployed,
rolled back, set as candidate, promoted) is a rule about ``current``, ``candidate`` and
``history`` that is easiest to get right, and to test, without a bucket; `registry` reads
the index, applies one of these and writes it back conditionally.

``history`` lists the versions that were current, oldest first, the current one last: deploy
appends, rollback drops the last and makes the one before current again.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from batchsight_tools.models.arguments import UsageError

Index = dict[str, Any]


def empty(name: str, now: str) -> Index:
    return {"v": 1, "name": name, "current": None, "candidate": None, "history": [], "versions": {},
            "updated_at": now}


def next_version(index: Index | None, taken: Iterable[int]) -> str:
    """One above every version the index lists and every version prefix in the bucket, so a
    number is never used twice, even by a publish that failed and left objects behind."""
    numbers = [int(v) for v in (index or {}).get("versions", {})] + list(taken)
    return str(max(numbers, default=0) + 1)


def add_version(index: Index, version: str, *, created_at: str, package: str, auroc: float, f1: float,
                now: str) -> Index:
    changed = _copy(index, now)
    if version in changed["versions"]:
        raise UsageError(f"version {version} of {index['name']} is already in the index; versions are immutable")
    changed["versions"][version] = {"created_at": created_at, "package": package, "auroc": auroc, "f1": f1}
    return changed


def require(index: Index | None, version: str, name: str) -> None:
    """UsageError unless the index lists the version."""
    versions = sorted((index or {}).get("versions", {}), key=int)
    if version not in versions:
        known = f"the versions are {', '.join(versions)}" if versions else "it has no versions yet"
        raise UsageError(f"model {name} has no version {version}; {known} (`batchsight model list`)")


def deploy(index: Index, version: str, now: str) -> Index:
    """Make ``version`` current (and no longer the candidate, if it was)."""
    require(index, version, index["name"])
    changed = _copy(index, now)
    if changed["current"] != version:
        changed["current"] = version
        changed["history"].append(version)
    if changed.get("candidate") == version:
        changed["candidate"] = None
    return changed


def rollback(index: Index, now: str) -> Index:
    """Make the version that was current before the current one current again."""
    history = index.get("history", [])
    if len(history) < 2:
        raise UsageError(f"model {index['name']} has no earlier current version to roll back to "
                         f"(history: {', '.join(history) or 'none'}); deploy a version with "
                         "`batchsight model deploy --version N`")
    changed = _copy(index, now)
    changed["history"].pop()
    changed["current"] = changed["history"][-1]
    return changed


def set_candidate(index: Index, version: str, now: str) -> Index:
    """Name the version the gateways run in shadow beside the current one."""
    require(index, version, index["name"])
    if index.get("current") == version:
        raise UsageError(f"version {version} is already current; a candidate is a version to try beside it")
    changed = _copy(index, now)
    changed["candidate"] = version
    return changed


def promote(index: Index, now: str) -> Index:
    """The candidate becomes current."""
    candidate = index.get("candidate")
    if not candidate:
        raise UsageError(f"model {index['name']} has no candidate to promote; set one with "
                         "`batchsight model deploy --candidate N`")
    return deploy(index, candidate, now)


def _copy(index: Index, now: str) -> Index:
    changed = copy.deepcopy(index)
    changed.setdefault("candidate", None)
    changed["updated_at"] = now
    return changed
