"""The gateway's clock set back while the component runs (NTP after a boot without a real-time
clock, or an operator correcting it by hand): nothing may wait for the clock to catch up.

The edge program runs as its own process against moto and a real broker. Its wall clock is
stepped through a ``sitecustomize`` that offsets ``time.time`` and ``time.time_ns`` by what a
file says: the system clock of this shared machine cannot be stepped for one test, and the
monotonic clock, which the component's own timers must use, is left alone, as a real step
leaves it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from batchsight_tools.localcloud.hmi import Subscriber
from batchsight_tools.synth import generate
from tests.edge_process import Edge, result_keys, write_config
from tests.reliability.faults import journal_states
from tests.support import CloudFixture, report_reliability, wait_for

pytestmark = pytest.mark.integration
SET_BACK_SECONDS = 2 * 3600
CLOCK = '''\
import os
import time

_PATH = os.environ["BATCHSIGHT_TEST_CLOCK_OFFSET"]
_time, _time_ns = time.time, time.time_ns


def _offset() -> float:
    try:
        with open(_PATH) as offset:
            return float(offset.read() or 0)
    except (OSError, ValueError):
        return 0.0


time.time = lambda: _time() + _offset()
time.time_ns = lambda: _time_ns() + int(_offset() * 1e9)
'''


def test_a_clock_set_back_two_hours_delays_no_result_alert_or_heartbeat(
        local_cloud: CloudFixture, mqtt_broker: Any, hmi: Subscriber, tmp_path: Path) -> None:
    frames = generate(tmp_path / "camera", count=8, size=96, seed=61, anomaly_rate=0.5)
    config = write_config(tmp_path, local_cloud, mqtt_broker.port)
    data = yaml.safe_load(config.read_text())
    data["batch"].update(interval_seconds=3600, max_age_seconds=20)  # the first images wait for the step
    config.write_text(yaml.safe_dump(data))
    drop = tmp_path / "drop"
    drop.mkdir()
    clock_dir, offset = tmp_path / "clock", tmp_path / "clock-offset"
    clock_dir.mkdir()
    (clock_dir / "sitecustomize.py").write_text(CLOCK)
    offset.write_text("0")
    edge = Edge(config, tmp_path / "edge.log",
                env={"PYTHONPATH": str(clock_dir), "BATCHSIGHT_TEST_CLOCK_OFFSET": str(offset)})
    journal = tmp_path / "work" / "journal.sqlite3"
    try:
        wait_for(lambda: hmi.statuses, 30, "the component's first status")
        before = frames[:4]
        for frame in before:
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
        wait_for(lambda: journal.exists() and len(journal_states(journal)) >= len(before), 30,
                 "the first images journaled")
        offset.write_text(str(-SET_BACK_SECONDS))  # now, while they wait for their batch
        statuses_at_step = len(hmi.statuses)
        for frame in frames[4:]:
            (drop / frame.path.name).write_bytes(frame.path.read_bytes())
        recover_s = wait_for(lambda: len(hmi.results) >= len(frames), 90, "every image's result after the clock step")
        wait_for(lambda: len(hmi.statuses) > statuses_at_step + 1, 30, "status heartbeats after the step")
    finally:
        assert edge.stop() == 0
    assert len(result_keys(local_cloud)) == len(frames)
    anomalous = {i for i, (_, message) in hmi.results.items() if message["is_anomalous"]}
    assert set(hmi.alerts) == anomalous and anomalous, "an alert for every anomalous image"
    log = (tmp_path / "edge.log").read_text()
    assert '"trigger": "clock"' in log, "the images seen before the step were sent at once"
    assert hmi.duplicates == 0
    report_reliability("clock-set-back-2h", dropped=len(frames), accounted=len(result_keys(local_cloud)),
                       duplicates=hmi.duplicates, recover_s=recover_s)
