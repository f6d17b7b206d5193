"""Step Functions' history quota, and the hand-over to a fresh execution before it is reached.

A Standard execution may hold 25,000 history events; one that keeps draining adds 16 + 7 per
worker every drain round (measured under moto: a Task is 5 events, a Choice 2, a Map 4 plus
2 per iteration around its Task), so a 24/7 line would reach the quota within a day or two and
fail outside every Catch. Instead, CheckWork reads how long the history is (the newest event's
id, one GetExecutionHistory call) and asks for a hand-over once it passes HANDOVER_EVENTS: the
execution passes the model lock and the hosted model to a successor it starts itself
(continue-as-new) and ends.

The successor's name is derived from the execution's own, so a retried hand-over names the
same successor (StartExecution with the same name and input is idempotent): ``{root}-h{n}-{id}``
with ``root`` the first execution's name (cut to 56 characters), ``n`` the generation and
``id`` eight hex digits of the predecessor's ARN, within Step Functions' 80 characters.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

QUOTA = 25_000  # events of one Standard execution's history
CEILING_FRACTION = 0.8  # an execution that could not hand over stops its model before this share
EVENTS_PER_ROUND = 16  # RenewLock, the Map's own events, CheckRemaining and MoreWork
EVENTS_PER_WORKER = 7  # each Map iteration: started, succeeded, and its Task's five
EVENTS_PER_IN_FLIGHT_WAIT = 9  # WaitForInFlight, CheckInFlight, MoreWork
EVENTS_AT_START = 6  # ExecutionStarted and the first CheckWork
_SUCCESSOR = re.compile(r"^(?P<root>.+)-h(?P<generation>\d+)-[0-9a-f]{8}$")
ROOT_CHARACTERS = 56

__all__ = ["QUOTA", "HistoryQuotaNear", "ceiling", "estimate", "history_length", "start_successor",
           "state_machine_arn", "successor_arn",
           "successor_name"]


class HistoryQuotaNear(RuntimeError):
    """The history passed 80% of the quota and no hand-over took it: stop the model and end.

    The state machine catches it by its class name (to StopModelAfterFailure).
    """


def ceiling() -> int:
    """Past this many events an execution stops its model instead of trying to hand over again."""
    return int(QUOTA * CEILING_FRACTION)


def history_length(execution_arn: str, sfn: Any) -> int | None:
    """Events in the execution's history so far: the newest event's id (ids count up from 1).

    Asked newest first, one event; moto ignores both options and answers the whole history, so
    the largest id is taken either way. None when it cannot be read (a throttle, a test's
    made-up execution id): the caller falls back on its estimate.
    """
    try:
        events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1,
                                           reverseOrder=True, includeExecutionData=False)["events"]
    except (BotoCoreError, ClientError, KeyError):
        return None
    return max((int(event["id"]) for event in events), default=None)


def estimate(previous: int, *, after: str, workers: int) -> int:
    """The history's length by the structure of the loop, when it could not be read."""
    if after == "round":
        return previous + EVENTS_PER_ROUND + EVENTS_PER_WORKER * workers
    if after == "in_flight":
        return previous + EVENTS_PER_IN_FLIGHT_WAIT
    return previous + EVENTS_AT_START


def successor_name(execution_arn: str) -> str:
    """The name of the execution that takes over from this one (deterministic, at most 75 characters)."""
    name = execution_arn.rsplit(":", 1)[-1]
    match = _SUCCESSOR.match(name)
    root, generation = (match["root"], int(match["generation"])) if match else (name[:ROOT_CHARACTERS], 0)
    digest = hashlib.sha256(execution_arn.encode()).hexdigest()[:8]
    return f"{root[:ROOT_CHARACTERS]}-h{generation + 1}-{digest}"


def successor_arn(execution_arn: str) -> str:
    """The successor's execution ARN: the same state machine, the successor's name."""
    return f"{execution_arn.rsplit(':', 1)[0]}:{successor_name(execution_arn)}"


def start_successor(execution_arn: str, execution_input: dict[str, Any], sfn: Any) -> str:
    """Start the successor of ``execution_arn`` (its deterministic name) with this input; its name.

    A successor that already exists is one an earlier attempt started: that is success, not a
    conflict. The function starts it (not a ``states:startExecution`` Task) so that the lock's
    hand-over and the start are one step that can undo the hand-over when the start fails.
    """
    name = successor_name(execution_arn)
    try:
        sfn.start_execution(stateMachineArn=state_machine_arn(execution_arn), name=name,
                            input=json.dumps(execution_input))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
    return name


def state_machine_arn(execution_arn: str) -> str:
    """The state machine an execution belongs to: ``...:execution:{machine}:{name}``."""
    head, machine, _name = execution_arn.rsplit(":", 2)
    return f"{head.rsplit(':', 1)[0]}:stateMachine:{machine}"
