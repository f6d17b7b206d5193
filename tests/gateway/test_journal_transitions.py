"""The image states in the journal: every change passes the one transition table (lifecycle.py),
whether the journal moves one image (advance) or a whole set in one statement (validated,
resubmit, set_aside, prune, the hand-off's claim)."""
from __future__ import annotations

import time

import pytest

from batchsight.journal import IllegalTransition, ImageState, Journal
from batchsight.lifecycle import GONE, TRANSITIONS, Move, sources
from tests.gateway.journal_support import add_in_order, iid, record, state_of


# --- advance ------------------------------------------------------------------------------------

def test_advance_forward_through_every_state(journal: Journal) -> None:
    journal.add(record(1))
    for state in list(ImageState)[1:]:
        journal.advance([iid(1)], state)
        assert state_of(journal, 1) is state


def test_advance_stores_fields(journal: Journal) -> None:
    journal.add(record(1))
    journal.advance([iid(1)], ImageState.SUBMITTED)
    journal.advance([iid(1)], ImageState.RESULT_STORED, is_anomalous=1, confidence=0.93,
                    result_json='{"v":1}')
    got = journal.get(iid(1))
    assert got is not None
    assert got.is_anomalous is True and got.confidence == pytest.approx(0.93)
    assert got.result_json == '{"v":1}'


def test_repeating_a_step_is_a_no_op(journal: Journal) -> None:
    journal.add(record(1))
    journal.advance([iid(1)], ImageState.UPLOADED)
    journal.advance([iid(1)], ImageState.UPLOADED)
    assert state_of(journal, 1) is ImageState.UPLOADED
    assert journal.counts()["uploaded"] == 1


def test_going_backwards_raises(journal: Journal) -> None:
    journal.add(record(1))
    journal.advance([iid(1)], ImageState.ENQUEUED)
    with pytest.raises(IllegalTransition, match="enqueued"):
        journal.advance([iid(1)], ImageState.UPLOADED)
    with pytest.raises(IllegalTransition):
        journal.advance([iid(1)], ImageState.VALIDATED)
    assert state_of(journal, 1) is ImageState.ENQUEUED


def test_unknown_image_raises(journal: Journal) -> None:
    with pytest.raises(IllegalTransition, match="unknown image"):
        journal.advance(["f" * 64], ImageState.UPLOADED)


def test_a_failing_advance_changes_nothing(journal: Journal) -> None:
    """All ids of one call move in one transaction: a bad one rolls back the good ones."""
    journal.add(record(1))
    journal.add(record(2))
    journal.advance([iid(2)], ImageState.SUBMITTED)
    with pytest.raises(IllegalTransition):
        journal.advance([iid(1), iid(2)], ImageState.UPLOADED)
    assert state_of(journal, 1) is ImageState.VALIDATED
    with pytest.raises(IllegalTransition):
        journal.advance([iid(1), "e" * 64], ImageState.ENQUEUED)
    assert state_of(journal, 1) is ImageState.VALIDATED
    journal.advance([iid(1)], ImageState.UPLOADED)  # the journal is still usable afterwards
    assert state_of(journal, 1) is ImageState.UPLOADED


def test_skipping_the_result_raises(journal: Journal) -> None:
    journal.add(record(1))
    journal.advance([iid(1)], ImageState.SUBMITTED)
    with pytest.raises(IllegalTransition):
        journal.advance([iid(1)], ImageState.ALERTED)


@pytest.mark.parametrize("start", [s for s in ImageState if s not in (ImageState.RESULT_STORED, ImageState.ALERTED)])
def test_alerted_is_reachable_only_from_result_stored(journal: Journal, start: ImageState) -> None:
    journal.add(record(1), state=ImageState.RECEIVED)
    journal.advance([iid(1)], start)
    with pytest.raises(IllegalTransition, match="result_stored"):
        journal.advance([iid(1)], ImageState.ALERTED)
    assert state_of(journal, 1) is start
    journal.advance([iid(1)], ImageState.RESULT_STORED)  # skipping the cloud steps stays allowed
    journal.advance([iid(1)], ImageState.ALERTED)
    journal.advance([iid(1)], ImageState.ALERTED)  # the idempotent repeat
    assert state_of(journal, 1) is ImageState.ALERTED


# --- the table, and the moves of whole sets --------------------------------------------------------

def test_every_state_is_in_the_table_steps_go_forward_and_resubmit_is_the_one_step_back() -> None:
    order = list(ImageState)
    assert set(TRANSITIONS) == set(ImageState)
    back = set()
    for state, moves in TRANSITIONS.items():
        for to, move in moves.items():
            if to is GONE:
                assert move in (Move.SET_ASIDE, Move.PRUNE)
            elif order.index(to) < order.index(state):
                back.add((state, to, move))
            else:
                assert move is Move.STEP, (state, to)
    assert back == {(ImageState.SUBMITTED, ImageState.VALIDATED, Move.RESUBMIT)}
    assert sources(ImageState.ALERTED, Move.STEP) == (ImageState.RESULT_STORED,)
    assert sources(ImageState.VALIDATED, Move.STEP) == (ImageState.RECEIVED,)
    assert sources(GONE, Move.SET_ASIDE) == (ImageState.RECEIVED, ImageState.VALIDATED)
    assert sources(GONE, Move.PRUNE) == (ImageState.ALERTED,)


def test_a_move_the_table_does_not_have_is_refused_before_any_statement() -> None:
    with pytest.raises(IllegalTransition, match="resubmit"):
        sources(ImageState.ALERTED, Move.RESUBMIT)


def test_an_image_enters_the_journal_received_or_validated_only(journal: Journal) -> None:
    with pytest.raises(IllegalTransition, match="journaled as uploaded"):
        journal.add(record(1), state=ImageState.UPLOADED)
    assert journal.get(iid(1)) is None


def test_advance_cannot_take_the_step_back_only_resubmit_takes(journal: Journal) -> None:
    journal.add(record(1))
    journal.cut_batch("b1", max_images=1)
    journal.advance([iid(1)], ImageState.SUBMITTED)
    with pytest.raises(IllegalTransition, match="submitted, cannot become validated"):
        journal.advance([iid(1)], ImageState.VALIDATED)
    journal.resubmit([iid(1)])
    got = journal.get(iid(1))
    assert got is not None and got.state is ImageState.VALIDATED and got.batch_id is None
    assert journal.waiting()[0] == 1, "out of its batch, waiting for a new one"


def test_resubmit_moves_only_images_still_submitted(journal: Journal) -> None:
    ids = add_in_order(journal, range(3))
    journal.cut_batch("b1", max_images=3)
    journal.advance(ids, ImageState.SUBMITTED)
    journal.advance([ids[1]], ImageState.RESULT_STORED)  # its result came meanwhile
    journal.resubmit(ids)
    assert [state_of(journal, n) for n in range(3)] == [ImageState.VALIDATED, ImageState.RESULT_STORED,
                                                       ImageState.VALIDATED]
    kept = journal.get(ids[1])
    assert kept is not None and kept.batch_id == "b1"


def test_only_received_images_become_validated(journal: Journal) -> None:
    journal.add(record(1), state=ImageState.RECEIVED)
    journal.add(record(2), state=ImageState.RECEIVED)
    journal.advance([iid(2)], ImageState.UPLOADED)
    journal.validated([iid(1), iid(2), "f" * 64])
    assert (state_of(journal, 1), state_of(journal, 2)) == (ImageState.VALIDATED, ImageState.UPLOADED)


def test_set_aside_takes_out_only_images_not_yet_uploaded(journal: Journal) -> None:
    for n, state in enumerate((ImageState.RECEIVED, ImageState.VALIDATED, ImageState.UPLOADED)):
        journal.add(record(n), state=ImageState.RECEIVED)
        journal.advance([iid(n)], state)
        journal.set_aside(iid(n), f"/q/{n}.jpg", "spool file gone")
    assert journal.get(iid(0)) is None and journal.get(iid(1)) is None
    assert state_of(journal, 2) is ImageState.UPLOADED


def test_prune_forgets_only_alerted_images(journal: Journal) -> None:
    ids = add_in_order(journal, range(2))
    journal.advance(ids, ImageState.RESULT_STORED)
    journal.advance([ids[0]], ImageState.ALERTED)
    assert journal.prune(older_than=time.time() + 1) == 1
    assert journal.get(ids[0]) is None and state_of(journal, 1) is ImageState.RESULT_STORED


def test_the_handoff_claims_only_stored_results_and_queues_in_the_same_transaction(journal: Journal) -> None:
    ids = add_in_order(journal, range(2))
    journal.advance([ids[0]], ImageState.RESULT_STORED)
    with journal.handoff() as tx:
        assert tx.claim_image(ids[0]) is True
        assert tx.claim_image(ids[0]) is False, "alerted already"
        assert tx.claim_image(ids[1]) is False, "validated: no result to hand off"
        tx.put("t/result", b"{}")
    assert (state_of(journal, 0), state_of(journal, 1)) == (ImageState.ALERTED, ImageState.VALIDATED)
    assert [m.body for m in journal.outbox_messages()] == [b"{}"]


def test_advance_checks_a_set_larger_than_one_lookup(journal: Journal) -> None:
    """The states of a big batch are read in chunks, checked, and written in one transaction."""
    rows = [record(n) for n in range(1200)]
    journal.add_many(rows, state=ImageState.VALIDATED)
    ids = [row["image_id"] for row in rows]
    journal.advance([*ids[:-1], ids[0]], ImageState.UPLOADED)  # a repeated id is a repeated step
    assert journal.counts()["uploaded"] == 1199
    with pytest.raises(IllegalTransition, match="uploaded, cannot become validated"):
        journal.advance(ids, ImageState.VALIDATED)
    assert journal.counts()["validated"] == 1
