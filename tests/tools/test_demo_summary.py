"""The demo's summary, floor and signal handling, without running a demo.

- every option's help states its default;
- the summary is a markdown table headed by the date and the command;
- the floor: recall and precision of the final verdicts (a correction overrules the edge's first
  verdict) against the labels, each named in the failure line when below;
- a signal becomes ``Stopped``, waits while a child is being started, and is only noted once
  clean-up has begun.
"""
from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchsight_tools.demo.frames import Fitted, Frame
from batchsight_tools.demo.options import MIN_PRECISION, MIN_RECALL, build_parser
from batchsight_tools.demo.signals import SignalGuard, Stopped
from batchsight_tools.demo.summary import Run, detection, problems, table
from batchsight_tools.localcloud.hmi import Subscriber


def _message(name: str, anomalous: bool, *, edge: bool = False) -> tuple[float, dict[str, Any]]:
    return 100.5, {"file_name": name, "is_anomalous": anomalous, "judged_by": "edge" if edge else "cloud",
                   "result_key": "" if edge else f"results/{name}.json", "confidence": 0.9, "batch_id": "b"}


def _run(verdicts: dict[str, bool], labels: dict[str, str], *, corrections: dict[str, bool] | None = None,
         edge: bool = False) -> Run:
    subscriber = Subscriber(port=1, topic_filter="#", echo=False)
    for name, anomalous in verdicts.items():
        subscriber.results[name] = _message(name, anomalous, edge=edge)
        if anomalous:
            subscriber.alerts[name] = _message(name, anomalous, edge=edge)
    for name, anomalous in (corrections or {}).items():
        subscriber.corrections[name] = _message(name, anomalous)
        if anomalous:
            subscriber.alerts[name] = _message(name, anomalous)
    subscriber.batches.append({"images": len(verdicts)})
    frames = [Frame(Path(f"/camera/{name}"), label, dropped_at=100.0) for name, label in labels.items()]
    documents = {} if edge else {name: {"image_id": name, "_copies": 1} for name in verdicts}
    return Run(frames=frames, subscriber=subscriber, documents=documents,
               fitted=Fitted(Path("m.npz"), "aligned", "aligned on 3 generated normal parts"),
               floors=(MIN_RECALL, MIN_PRECISION), hosted_seconds=2.0, elapsed=10.0, still_hosted=False,
               finished=True, timeout=150.0, edge_exit=None)


def test_every_option_states_its_default() -> None:
    parser = build_parser()
    for action in parser._actions:
        if action.dest != "help":
            assert "default" in (action.help or ""), f"{action.option_strings} does not state its default"
    assert "(default 60)" in " ".join(parser.format_help().split())


def test_the_summary_is_a_markdown_table_headed_by_date_and_command() -> None:
    run = _run({"a.jpg": True, "b.jpg": False}, {"a.jpg": "anomaly", "b.jpg": "normal"})
    lines = table(run, command="batchsight demo --count 2", broker="mosquitto")
    assert lines[0] == (f"Measured {dt.date.today().isoformat()} with `batchsight demo --count 2` "
                        f"({os.cpu_count()} cores, mosquitto broker)")
    assert lines[1:4] == ["", "| figure | value |", "|---|---|"]
    rows = dict(line[2:-2].split(" | ", 1) for line in lines[4:])
    assert rows["images dropped"] == "2 (1 with defects)"
    assert rows["alerts"] == "1: 1 of the 1 defective parts, 0 false alarms"
    assert rows["recall / precision on the labels"] == "1.00 / 1.00 (floor 0.75 / 0.65)"
    assert rows["result documents in the final bucket"] == "2, one per image sent to the cloud"
    assert all(line.count("|") == 3 for line in lines[2:]), "no value breaks the table"
    assert problems(run) == []


def test_detection_below_the_floor_is_named_with_its_figures() -> None:
    labels = {f"d{i}.jpg": "anomaly" for i in range(4)} | {f"g{i}.jpg": "normal" for i in range(4)}
    verdicts = {"d0.jpg": True, "g0.jpg": True, "g1.jpg": True} | {n: False for n in labels if n not in
                                                                     ("d0.jpg", "g0.jpg", "g1.jpg")}
    why = problems(_run(verdicts, labels))
    assert why == ["recall 0.25 (1 of 4 defective parts found) is below the floor 0.75",
                   "precision 0.33 (1 of 3 alerts were defective parts) is below the floor 0.65"]


def test_a_correction_overrules_the_edge_verdict_and_nothing_to_measure_is_not_a_failure() -> None:
    labels = {"d.jpg": "anomaly", "g.jpg": "normal"}
    run = _run({"d.jpg": False, "g.jpg": False}, labels, corrections={"d.jpg": True}, edge=True)
    found = detection(run.frames, run.subscriber)
    assert (found.found, found.flagged, found.recall, found.precision) == (1, 1, 1.0, 1.0)
    no_defects = _run({"g.jpg": False}, {"g.jpg": "normal"})
    assert "n/a / n/a" in dict(line[2:-2].split(" | ", 1) for line in table(no_defects, command="c", broker="b")[4:]
                               )["recall / precision on the labels"]
    assert problems(no_defects) == []


def test_a_missing_result_and_a_model_left_hosted_fail_the_demo() -> None:
    run = _run({"a.jpg": True}, {"a.jpg": "anomaly", "b.jpg": "normal"})
    run.finished, run.still_hosted = False, True
    assert problems(run) == ["1 of 2 images got a result within --timeout 150 s",
                             "the model was left hosted (a cost invariant is broken)"]


@pytest.fixture
def guard() -> Iterator[SignalGuard]:
    guard = SignalGuard().install()
    yield guard
    guard.restore()


def test_a_signal_becomes_stopped(guard: SignalGuard) -> None:
    with pytest.raises(Stopped) as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)  # the handler runs here
    assert stopped.value.name == "SIGTERM" and guard.received == signal.SIGTERM


def test_a_signal_waits_while_a_child_is_started_and_registered(guard: SignalGuard) -> None:
    started = []
    with pytest.raises(Stopped), guard.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        started.append("child registered")
    assert started == ["child registered"], "a start in progress finishes first"


def test_a_signal_during_clean_up_is_only_noted(guard: SignalGuard) -> None:
    guard.closing()
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
    assert guard.received == signal.SIGTERM
