"""An image's life in the journal: its states, who judges it, and every legal change of state.

One table (``TRANSITIONS``) says which state may become which, and by which kind of move; the
journal checks each change against it (``check``) or, for a statement that moves a whole set
at once, puts the table's answer into the statement's WHERE clause (``sources``), so a row in
any other state is left alone rather than moved wrongly. A change the table does not allow is
a bug in the caller, never bad data.
"""
from __future__ import annotations

from enum import StrEnum


class ImageState(StrEnum):
    RECEIVED = "received"        # complete, hashed, durable in the spool; pixels not yet decoded
    VALIDATED = "validated"      # decoded too (verifier.py); waiting for a batch
    UPLOADED = "uploaded"        # object in the source bucket
    ENQUEUED = "enqueued"        # message in the queue
    SUBMITTED = "submitted"      # execution started for its batch
    RESULT_STORED = "result_stored"
    ALERTED = "alerted"          # final: result published on MQTT
# Rejected files never become images: they are listed in the quarantine table instead.


class Route(StrEnum):
    """Who judges an image (edge_judge.py). An image without a route waits for the local detector."""

    CLOUD = "cloud"   # the batch pipeline only
    EDGE = "edge"     # the local detector only: VALIDATED -> RESULT_STORED, never uploaded
    AUDIT = "audit"   # the local verdict is published at once, and the cloud checks it


BATCHED_ROUTES = (Route.CLOUD.value, Route.AUDIT.value)


class Move(StrEnum):
    """Why an image changes state; each journal method makes one kind of move."""

    STEP = "step"            # along the pipeline: advance, validated, the hand-off to MQTT
    RESUBMIT = "resubmit"    # the one step back: no result in time, so out of its batch, into a new one
    SET_ASIDE = "set_aside"  # out of the journal into quarantine: its file is gone, damaged or undecodable
    PRUNE = "prune"          # forgotten, long after its result was published


class IllegalTransition(RuntimeError):
    """A caller tried a change the table does not allow (back, or past the result): a bug, never data."""


_R, _V, _U, _E, _S, _RS, _A = ImageState  # received, validated, uploaded, enqueued, submitted, result_stored, alerted
GONE = None  # not a state: the image leaves the images table

# Each state, the states it may become, and by which move. Steps may skip the cloud steps (an
# image judged at the edge goes validated -> result_stored; tests and benchmarks seed images
# further along), never the stored result, which every alert rests on. Repeating a step is a
# no-op, not an error. Joining a batch (Journal.cut_batch) changes no state; only resubmit leaves one.
TRANSITIONS: dict[ImageState, dict[ImageState | None, Move]] = {
    _R: {_V: Move.STEP, _U: Move.STEP, _E: Move.STEP, _S: Move.STEP, _RS: Move.STEP, GONE: Move.SET_ASIDE},
    _V: {_U: Move.STEP, _E: Move.STEP, _S: Move.STEP, _RS: Move.STEP, GONE: Move.SET_ASIDE},
    _U: {_E: Move.STEP, _S: Move.STEP, _RS: Move.STEP},
    _E: {_S: Move.STEP, _RS: Move.STEP},
    _S: {_RS: Move.STEP, _V: Move.RESUBMIT},
    _RS: {_A: Move.STEP},
    _A: {GONE: Move.PRUNE},
}
# What an image may be when it is first journaled: received by ingest; validated where the caller
# decoded it already (tests, benchmarks).
ENTRY = frozenset({_R, _V})


def sources(to: ImageState | None, move: Move) -> tuple[ImageState, ...]:
    """The states ``move`` may take to ``to``: the guard of a statement that moves a set of
    images at once (``state IN (...)``), worked out once rather than per row."""
    found = tuple(state for state, moves in TRANSITIONS.items() if moves.get(to) is move)
    if not found:
        raise IllegalTransition(f"no image may {move.value} to {to.value if to else 'leave the journal'}")
    return found


def check(image_id: str, current: ImageState, to: ImageState, move: Move = Move.STEP) -> None:
    """Raise unless ``move`` may take an image from ``current`` to ``to`` (or it is there already)."""
    if current is to and move is Move.STEP:
        return
    if TRANSITIONS[current].get(to) is not move:
        allowed = ", ".join(state.value for state in TRANSITIONS if TRANSITIONS[state].get(to) is move)
        raise IllegalTransition(f"image {image_id} is {current.value}, cannot become {to.value}"
                                f" (only from {allowed or 'nowhere'})")
