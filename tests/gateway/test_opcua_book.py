"""What the OPC UA server counts, without a server: the handshake counter and its acknowledgement,
the shifts (rolled over by the clock), the last results; and the condition a PLC reads from the
component's status."""
from __future__ import annotations

from datetime import datetime

from batchsight.opcua.book import COUNTER_MODULO, ResultBook, shift_start
from batchsight.plant_state import Alarm, condition
from batchsight.verdicts import Evaluation, Verdict

SHIFTS = [(6, 0), (14, 0), (22, 0)]


def verdict(n: int, evaluation: Evaluation) -> Verdict:
    return Verdict(image_id=f"id{n}", part_id=f"P{n}", lot="L", file_name="f.jpg", model="m", model_version="1",
                   is_anomalous=evaluation is not Evaluation.OK, confidence=0.5, anomaly_names=(),
                   evaluation=evaluation, judged_by="edge", batch_id="", captured_at="", detected_at="")


def test_a_shift_starts_at_the_latest_start_time_today_or_yesterday() -> None:
    assert shift_start(datetime(2026, 12, 5, 13, 59), SHIFTS) == datetime(2026, 12, 5, 6, 0)
    assert shift_start(datetime(2026, 12, 5, 22, 0), SHIFTS) == datetime(2026, 12, 5, 22, 0)
    assert shift_start(datetime(2026, 12, 5, 5, 59), SHIFTS) == datetime(2026, 12, 4, 22, 0), "the night shift"


def test_counts_roll_into_the_previous_shift_when_the_next_one_starts() -> None:
    now = [datetime(2026, 12, 5, 13, 0)]
    book = ResultBook(keep=2, shifts=SHIFTS, clock=lambda: now[0])
    for n, evaluation in enumerate((Evaluation.OK, Evaluation.NOT_OK, Evaluation.NOT_DECIDABLE)):
        book.add(verdict(n, evaluation))
    assert (book.current_shift.total, book.current_shift.ok, book.current_shift.ng,
            book.current_shift.not_decidable) == (3, 1, 1, 1)
    now[0] = datetime(2026, 12, 5, 14, 0, 1)
    assert book.roll() and not book.roll()
    assert book.previous_shift is not None and book.previous_shift.total == 3 and book.current_shift.total == 0
    assert [v.image_id for v in book.last_n(5)] == ["id1", "id2"], "only the kept ones, oldest first"
    assert book.find("id0") is None and book.find("id2") is not None


def test_the_plc_acknowledges_and_the_counter_wraps() -> None:
    book = ResultBook(keep=5, shifts=SHIFTS, counter=COUNTER_MODULO - 1)
    book.acknowledge(COUNTER_MODULO - 1)
    book.add(verdict(1, Evaluation.OK))
    assert book.counter == 0 and book.pending == 1
    book.acknowledge(0)
    assert book.pending == 0


def test_the_condition_names_the_most_severe_alarm_by_its_code_not_its_words() -> None:
    assert condition({"state": "running", "alarms": []}).ready
    full = condition({"state": "running", "cloud": "unreachable",
                      "alarms": ["no file events for the drop folder (limit reached): it is scanned",
                                 "quota of 2 GiB reached; new images wait in the drop folder"],
                      "alarm_codes": [Alarm.NOT_WATCHED, Alarm.DISK]})
    assert (full.ready, full.error_code, full.error_text[:5]) == (False, 10, "quota")
    offline = condition({"state": "running", "cloud": "unreachable", "alarms": []})
    assert (offline.ready, offline.error_code) == (True, 20)
    refused = condition({"state": "running", "cloud": "unreachable", "alarms": ["AccessDenied: attach the policy"],
                         "alarm_codes": [Alarm.CLOUD_REFUSES]})
    assert (refused.error_code, refused.error_text) == (22, "AccessDenied: attach the policy")
    uncoded = condition({"state": "running", "alarms": ["disk full"]})  # a status from before the codes
    assert (uncoded.ready, uncoded.error_code) == (True, 90)
    assert condition({"state": "stopped"}).error_code == 1
