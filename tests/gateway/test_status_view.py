"""`batchsight status`: the table and the JSON from a real journal and the status file the
running component writes (runtime._publish_status), with the component running, stuck or stopped."""
from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsight import status_file
from batchsight.config import Config
from batchsight.journal import ImageState, Journal
from batchsight.runtime import Component
from batchsight.status_view import duration, gather, iso, render
from tests.gateway.test_wiring import NO_AWS, Broker

ALARM = "AWS refuses PutObject (AccessDenied): the credentials lack a permission"


def row(table: str, name: str) -> str:
    """The value on the table's line for ``name`` (whatever the column width)."""
    [value] = [line[len(name):].strip() for line in table.splitlines() if re.match(rf"{name}\s{{2}}", line)]
    return value


def image(n: int, *, size: int = 1000) -> dict[str, Any]:
    return {"image_id": f"{n:064x}", "file_name": f"part-{n}.jpg", "path": f"/drop/part-{n}.jpg", "ext": "jpg",
            "size": size, "width": 64, "height": 64, "captured_at": "2026-11-23T10:00:00.000Z"}


@pytest.fixture
def component(config: Config) -> Iterator[Component]:
    component = Component(config, publisher=Broker(), clients=NO_AWS)
    yield component
    component.feedback.close()
    component.journal.close()


def test_the_component_writes_the_status_it_publishes(component: Component, config: Config) -> None:
    component._cloud_state, component._cloud_alarm = "unreachable", ALARM
    component._publish_status("running")
    [(topic, body, retain)] = [sent for sent in component.publisher.inner.sent if sent[0].endswith("/status")]  # type: ignore[attr-defined]
    assert retain and json.loads(config.status_path.read_text()) == json.loads(body)
    assert json.loads(body)["alarms"] == [ALARM]
    assert json.loads(body)["alarm_codes"] == [22], "an AWS refusal: the code a PLC reads (plant_state.Alarm)"
    assert [p.name for p in config.work_folder.iterdir() if p.name.startswith(".status-")] == []


def test_the_table_shows_the_backlog_the_last_batch_and_the_alarms(component: Component, config: Config) -> None:
    journal = component.journal
    journal.add_many([image(n) for n in range(5)], state=ImageState.VALIDATED)
    journal.cut_batch("gw-batch-1", max_images=3)
    journal.add(image(9, size=2048))
    component._cloud_state, component._cloud_alarm = "unreachable", ALARM
    component._publish_status("running")
    table = render(gather(config, journal, now=time.time() + 25))
    assert row(table, "Component").startswith("running, its status written ") and row(table, "Component").endswith(
        "(25 s ago)")
    assert row(table, "Cloud link") == "unreachable"
    assert row(table, "Alarms") == "1" and f"  ! {ALARM}" in table
    assert row(table, "  validated") == "6" and row(table, "  alerted") == "0"
    assert row(table, "  judged at the edge") == "0"
    assert re.fullmatch(r"3 images, the oldest since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ \(25 s ago\)",
                        row(table, "Waiting for batch"))
    assert re.fullmatch(r"gw-batch-1: 3 images, cut .* \(25 s ago\), not submitted yet", row(table, "Last batch"))
    assert row(table, "Held on gateway") == "6.9 KiB of the 2.0 GiB quota (0.0 %)"
    assert row(table, "Free space").endswith("in the work folder (new images wait below 256.0 MiB)")
    assert "{" not in table  # no raw JSON


def test_json_keeps_a_machine_format_with_iso_times(component: Component, config: Config) -> None:
    component.journal.add(image(1))
    component.journal.cut_batch("gw-batch-1", max_images=1)
    component.journal.add(image(2))
    component._publish_status("running")
    now = time.time()
    status = json.loads(json.dumps(gather(config, component.journal, now=now)))
    assert status["counts"]["validated"] == 2 and status["waiting_for_batch"] == 1
    assert status["judgements"] == {"judged_at_edge": 0, "audited": 0, "corrected": 0}
    for moment in (status["oldest_waiting_since"], status["last_batch"]["created_at"], status["generated_at"],
                   status["component"]["written_at"]):
        assert moment.endswith("Z") and moment[10] == "T", moment
    assert status["component"] == {**status["component"], "state": "running", "cloud": "ok", "alarms": [],
                                   "stale": False}
    assert status["held_bytes"] == 2000 and status["quota_bytes"] == config.disk.quota_bytes
    assert status["work_folder_free_bytes"] > 0


def test_without_a_status_file_the_component_is_unknown(config: Config, journal: Journal) -> None:
    status = gather(config, journal, now=time.time())
    assert status["component"] is None
    table = render(status)
    assert row(table, "Component").startswith("unknown: the component has written no status")
    assert row(table, "Alarms") == "unknown" and row(table, "Last batch") == "none yet"


def test_a_running_status_that_stopped_coming_says_the_component_is_not_answering(
        config: Config, journal: Journal) -> None:
    written = time.time() - 600
    status_file.write(config.status_path, {"state": "running", "cloud": "ok", "alarms": [],
                                           "updated_at": iso(written)})
    status = gather(config, journal, now=time.time())
    assert status["component"]["stale"] is True
    table = render(status)
    assert 'not answering: its last status, "running", is from' in table and "(10 min 0 s ago)" in table
    assert row(table, "Cloud link") == "ok (as last known, 10 min 0 s ago)"


def test_a_stopped_component_says_since_when(component: Component, config: Config) -> None:
    component._publish_status("stopped")
    table = render(gather(config, component.journal, now=time.time() + 3700))
    assert row(table, "Component").startswith("stopped since ") and row(table, "Component").endswith(
        "(1 h 1 min ago)")
    assert row(table, "Alarms") == "none (as last known, 1 h 1 min ago)"


def test_an_unreadable_status_file_counts_as_none(config: Config, journal: Journal) -> None:
    config.status_path.write_text("{half a stat")
    assert gather(config, journal, now=time.time())["component"] is None


@pytest.mark.parametrize("seconds,text", [(0, "0 s"), (59.9, "59 s"), (61, "1 min 1 s"), (7260, "2 h 1 min"),
                                          (90000, "1 d 1 h")])
def test_ages_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_status_file_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    for n in range(3):
        status_file.write(path, {"n": n, "updated_at": "2026-11-23T10:00:00.000Z"})
    assert status_file.read(path) == ({"n": 2, "updated_at": "2026-11-23T10:00:00.000Z"},
                                      pytest.approx(1795428000.0))
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_status_is_stale_only_after_several_missed_heartbeats() -> None:
    from batchsight import runtime

    assert status_file.STALE_AFTER_SECONDS >= 3 * runtime.STATUS_EVERY_SECONDS
