"""The history quota: how long an execution's history is, and the successor it hands over to."""
from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batchsight_pipeline import history

MACHINE = "arn:aws:states:us-east-1:123456789012:execution:BatchStateMachine-Ab12"
NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")  # Step Functions' execution names


class History:
    """A Step Functions client's GetExecutionHistory: newest first, as asked, or (moto) all of it."""

    def __init__(self, ids: list[int], error: Exception | None = None) -> None:
        self.ids, self.error = ids, error
        self.asked: list[dict[str, Any]] = []

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        self.asked.append(kwargs)
        if self.error:
            raise self.error
        return {"events": [{"id": n, "type": "TaskStateEntered"} for n in self.ids]}


def test_the_length_is_the_newest_events_id() -> None:
    sfn = History([4711])
    assert history.history_length(f"{MACHINE}:run", sfn) == 4711
    assert sfn.asked == [{"executionArn": f"{MACHINE}:run", "maxResults": 1, "reverseOrder": True,
                          "includeExecutionData": False}]
    assert history.history_length(f"{MACHINE}:run", History(list(range(1, 94)))) == 93  # moto: all of it


def test_an_unreadable_history_is_none_for_the_estimate_to_stand_in() -> None:
    error = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetExecutionHistory")
    assert history.history_length(f"{MACHINE}:run", History([], error)) is None
    assert history.history_length(f"{MACHINE}:run", History([])) is None


@pytest.mark.parametrize(("after", "workers", "added"), [("round", 2, 30), ("round", 16, 128),
                                                          ("in_flight", 0, 9), ("start", 0, 6)])
def test_the_estimate_follows_the_measured_event_counts(after: str, workers: int, added: int) -> None:
    assert history.estimate(100, after=after, workers=workers) == 100 + added


def test_a_successor_is_named_after_its_root_and_generation_deterministically() -> None:
    first = f"{MACHINE}:gw1-20261123T100000Z-cd59e477"
    second = history.successor_arn(first)
    assert history.successor_name(first) == second.rsplit(":", 1)[1] == history.successor_name(first)
    assert re.fullmatch(r"gw1-20261123T100000Z-cd59e477-h1-[0-9a-f]{8}", second.rsplit(":", 1)[1])
    third = history.successor_name(second)
    assert re.fullmatch(r"gw1-20261123T100000Z-cd59e477-h2-[0-9a-f]{8}", third)
    assert second.rsplit(":", 1)[0] == MACHINE


def test_a_long_root_is_cut_and_every_generation_fits_the_name_limit() -> None:
    arn = f"{MACHINE}:{'x' * 80}"
    for _ in range(12):
        name = history.successor_name(arn)
        assert NAME.fullmatch(name) and len(name) <= 75, name
        arn = history.successor_arn(arn)
    assert name.startswith("x" * 56 + "-h12-")


def test_the_ceiling_is_80_percent_of_the_quota() -> None:
    assert history.ceiling() == 20_000 and history.QUOTA == 25_000
