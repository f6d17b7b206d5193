"""The index rules: versions added, deployed, rolled back, candidate set and promoted; always the contract's shape."""
from __future__ import annotations

import jsonschema
import pytest

from batchsight_tools.models import index
from batchsight_tools.models.arguments import UsageError
from tests.support import load_schema

NOW = "2026-12-04T10:00:00Z"


def _valid(document: index.Index) -> index.Index:
    jsonschema.Draft202012Validator(load_schema("model_index"),
                                    format_checker=jsonschema.FormatChecker()).validate(document)
    return document


def _with(*versions: str) -> index.Index:
    document = index.empty("inspection", NOW)
    for version in versions:
        document = index.add_version(document, version, created_at=NOW, package=f"models/inspection/{version}/"
                                     "package.json", auroc=0.9, f1=0.8, now=NOW)
    return _valid(document)


def test_a_new_index_names_no_current_version() -> None:
    document = _with("1")
    assert (document["current"], document["candidate"], document["history"]) == (None, None, [])


def test_the_next_version_is_above_every_listed_and_every_taken_number() -> None:
    assert index.next_version(None, []) == "1"
    assert index.next_version(_with("1", "2"), []) == "3"
    assert index.next_version(_with("1", "2"), [7]) == "8"   # a failed publish's leftovers are skipped


def test_a_version_is_added_once() -> None:
    with pytest.raises(UsageError, match="already in the index; versions are immutable"):
        index.add_version(_with("1"), "1", created_at=NOW, package="p", auroc=1, f1=1, now=NOW)


def test_deploy_and_rollback_walk_the_history() -> None:
    document = _with("1", "2", "3")
    for version in ("1", "3", "2"):
        document = _valid(index.deploy(document, version, NOW))
    assert (document["current"], document["history"]) == ("2", ["1", "3", "2"])
    document = _valid(index.rollback(document, NOW))
    assert (document["current"], document["history"]) == ("3", ["1", "3"])
    document = _valid(index.rollback(document, NOW))
    assert (document["current"], document["history"]) == ("1", ["1"])
    with pytest.raises(UsageError, match=r"no earlier current version to roll back to \(history: 1\)"):
        index.rollback(document, NOW)


def test_deploying_the_current_version_changes_nothing_but_the_time() -> None:
    document = index.deploy(_with("1"), "1", NOW)
    assert index.deploy(document, "1", "2026-12-05T00:00:00Z")["history"] == ["1"]


def test_an_unknown_version_names_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"model inspection has no version 9; the versions are 1, 2"):
        index.deploy(_with("1", "2"), "9", NOW)
    with pytest.raises(UsageError, match=r"has no version 1; it has no versions yet"):
        index.require(None, "1", "inspection")


def test_a_candidate_is_promoted_to_current_and_cleared() -> None:
    document = index.deploy(_with("1", "2"), "1", NOW)
    document = _valid(index.set_candidate(document, "2", NOW))
    assert (document["current"], document["candidate"]) == ("1", "2")
    document = _valid(index.promote(document, NOW))
    assert (document["current"], document["candidate"], document["history"]) == ("2", None, ["1", "2"])
    with pytest.raises(UsageError, match="has no candidate to promote"):
        index.promote(document, NOW)
    with pytest.raises(UsageError, match="version 2 is already current"):
        index.set_candidate(document, "2", NOW)


def test_deploying_the_candidate_directly_clears_it() -> None:
    document = index.set_candidate(index.deploy(_with("1", "2"), "1", NOW), "2", NOW)
    assert index.deploy(document, "2", NOW)["candidate"] is None
