"""The functions' metrics: the real handlers run, their EMF documents are read back from stdout.

Drain and CheckWork run against moto server (real SQS and S3 calls over HTTP); the model is the
FakeBackend plug-in (tests/cloud/fake_backend.py). Each EMF document is one metric set: its
dimension sets, its metric definitions (name, unit) and the values at the top level.
"""
from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timedelta, UTC
from typing import Any

import pytest

from batchsight_pipeline import lock
from batchsight_pipeline import metrics as m
from batchsight_pipeline.backends.base import HOSTED
from batchsight_tools.localcloud.template import load_template
from batchsight_tools.stack import function
from tests.cloud.fake_backend import MODEL_ID
from tests.cloud.moto_stack import Stack


def emf_documents(out: str) -> list[dict[str, Any]]:
    """The EMF documents among the lines printed (Powertools' JSON logs are skipped)."""
    documents = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    for document in documents:
        (directive,) = document["_aws"]["CloudWatchMetrics"]
        for name in [d["Name"] for d in directive["Metrics"]]:
            assert name in document, f"{name} declared without a value"
        for dimension in {k for dset in directive["Dimensions"] for k in dset}:
            assert isinstance(document[dimension], str)
    return documents


def definitions(document: dict[str, Any]) -> dict[str, str]:
    """metric name -> unit."""
    return {d["Name"]: d["Unit"] for d in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


def dimension_sets(document: dict[str, Any]) -> list[list[str]]:
    return document["_aws"]["CloudWatchMetrics"][0]["Dimensions"]


def value(document: dict[str, Any], name: str) -> float:
    raw = document[name]
    return float(sum(raw)) if isinstance(raw, list) else float(raw)


def minutes_ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


@pytest.fixture(autouse=True)
def metrics_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Powertools prints nothing when these are set (a demo may set them)."""
    for name in ("POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV", "POWERTOOLS_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)


# --- drain -------------------------------------------------------------------------------------

def test_drain_emits_one_metric_set_per_line_and_the_hosted_models_age(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    drain = function("drain")

    for n, body in enumerate([b"A1", b"A2", b"n3"]):
        stack.queue_image(body, site="s1", line="l1", n=n)
    for n, body in enumerate([b"n4", b"n5"], start=10):
        stack.queue_image(body, site="s1", line="l2", n=n)
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody="{not json")
    capsys.readouterr()

    outcome = drain.handler({"worker": 0, "execution": "arn:x:exec",
                             "model": {"backend": "fake", "model_id": MODEL_ID, "status": HOSTED,
                                       "started_at": minutes_ago(12), "run_token": "r", "reason": ""}},
                            lambda_context)
    assert outcome == {"processed": 5, "anomalous": 2, "poisoned": 1, "retried": 0, "returned": 0}

    documents = emf_documents(capsys.readouterr().out)
    assert {d["_aws"]["CloudWatchMetrics"][0]["Namespace"] for d in documents} == {"batchsight"}
    per_line = {(d["site"], d["line"]): d for d in documents if "line" in d}
    assert set(per_line) == {("s1", "l1"), ("s1", "l2")}
    for document in per_line.values():
        # per line only: a pipeline total would be billed as metrics of its own (the dashboard sums the lines)
        assert dimension_sets(document) == [["site", "line"]]
        assert definitions(document) == {"ImagesProcessed": "Count", "Anomalies": "Count"}
    l1, l2 = per_line[("s1", "l1")], per_line[("s1", "l2")]
    assert (value(l1, "ImagesProcessed"), value(l1, "Anomalies")) == (3, 2)
    assert (value(l2, "ImagesProcessed"), value(l2, "Anomalies")) == (2, 0)

    # the dead letter is SQS's own NumberOfMessagesSent on the dead-letter queue; no retries, no metric
    (pipeline,) = [d for d in documents if "line" not in d]
    assert dimension_sets(pipeline) == [[]]
    assert definitions(pipeline) == {"HostedModelAgeMinutes": "None"}  # the fake backend bills while hosted
    assert value(pipeline, "HostedModelAgeMinutes") == pytest.approx(12, abs=0.5)


def test_drain_emits_its_retries_when_there_were_some(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    drain = function("drain")

    stack.queue_image(b"Error image")  # the fake backend fails it: retried later
    capsys.readouterr()
    assert drain.handler({"worker": 0, "execution": "e"}, lambda_context)["retried"] == 1
    (pipeline,) = emf_documents(capsys.readouterr().out)
    assert definitions(pipeline) == {"ImagesRetried": "Count"} and value(pipeline, "ImagesRetried") == 1


def test_drain_with_nothing_to_do_emits_nothing(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    drain = function("drain")

    capsys.readouterr()
    drain.handler({"worker": 0, "execution": "e"}, lambda_context)  # no model in the event either
    assert emf_documents(capsys.readouterr().out) == [], "nothing to say, nothing billed"


# --- model control -----------------------------------------------------------------------------

def model_control(action: str, capsys: pytest.CaptureFixture, context: Any, **event: Any) -> list[dict[str, Any]]:
    """The EMF documents that one ModelControl invocation prints."""
    handler_module = function("model_control")

    lock.acquire("arn:x:exec", time.time())  # a stop renews the execution's lock first
    capsys.readouterr()
    handler_module.handler({"action": action, "execution": "arn:x:exec", **event}, context)
    documents = emf_documents(capsys.readouterr().out)
    assert all(dimension_sets(d) == [[]] for d in documents), "model metrics are pipeline-wide"
    return documents


def test_model_control_counts_starts_and_the_age_while_hosted(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    (started,) = model_control("start", capsys, lambda_context)
    assert definitions(started) == {"ModelStarts": "Count"} and value(started, "ModelStarts") == 1
    state = {"backend": "fake", "model_id": MODEL_ID, "status": "STARTING",
             "started_at": minutes_ago(4), "run_token": "r", "reason": ""}
    (polled,) = model_control("status", capsys, lambda_context, model=state)
    assert definitions(polled) == {"HostedModelAgeMinutes": "None"}
    assert value(polled, "HostedModelAgeMinutes") == pytest.approx(4, abs=0.5)
    model_control("stop", capsys, lambda_context)


def test_stop_model_emits_the_hosted_minutes_from_the_state_passed_in(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    """StopModel passes "model.$": "$.model" (the hosted state, with started_at)."""
    model_control("start", capsys, lambda_context)
    state = {"backend": "fake", "model_id": MODEL_ID, "status": HOSTED,
             "started_at": minutes_ago(37.5), "run_token": "r", "reason": ""}
    (stopped,) = model_control("stop", capsys, lambda_context, model=state)
    assert definitions(stopped) == {"ModelStops": "Count", "HostedModelMinutes": "None"}
    assert value(stopped, "ModelStops") == 1
    assert value(stopped, "HostedModelMinutes") == pytest.approx(37.5, abs=0.5)


def test_stop_after_failure_has_no_start_time_and_emits_only_the_stop(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    """StopModelAfterFailure passes only the execution: the hosted minutes are unknown, not zero."""
    (stopped,) = model_control("stop", capsys, lambda_context)
    assert definitions(stopped) == {"ModelStops": "Count"}
    (stopped,) = model_control("stop", capsys, lambda_context, model={"status": "STARTING", "started_at": ""})
    assert definitions(stopped) == {"ModelStops": "Count"}


def test_a_failed_action_emits_nothing(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    handler_module = function("model_control")

    capsys.readouterr()
    with pytest.raises(ValueError):
        handler_module.handler({"action": "explode"}, lambda_context)
    assert emf_documents(capsys.readouterr().out) == []


# --- check work --------------------------------------------------------------------------------

def check_work_round(capsys: pytest.CaptureFixture, context: Any, *, previous: dict[str, Any] | None = None,
                     waiting: int = 0) -> list[dict[str, Any]]:
    """The EMF documents of one CheckRemaining (after a drain round), with the load carried in."""
    check_work = function("check_work")

    capsys.readouterr()
    check_work.handler({"execution": "e", "phase": "round", "drained": [], "load": previous}, context)
    return emf_documents(capsys.readouterr().out)


def test_check_work_keeping_up_at_one_unit_emits_nothing(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    """The queues' depths are SQS's own metrics; the load says nothing while nothing can scale."""
    stack.sqs.send_message(QueueUrl=stack.queue, MessageBody="m")
    assert check_work_round(capsys, lambda_context) == []
    assert check_work_round(capsys, lambda_context, previous={"checked_at": time.time() - 30, "backlog": 1}) == []


def test_check_work_emits_the_load_while_it_can_scale(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_SCALE_UNITS", "2")
    (document,) = check_work_round(capsys, lambda_context)
    assert dimension_sets(document) == [[]]
    assert set(definitions(document)) == {"ArrivalRate", "DrainRate", "ScaleUnits", "Overloaded", "BacklogMinutes",
                                          "HistoryEvents"}
    assert (value(document, "ScaleUnits"), value(document, "Overloaded")) == (1, 0)


def test_check_work_at_one_unit_emits_the_recovery_from_saturation(
        stack: Stack, lambda_context: Any, capsys: pytest.CaptureFixture) -> None:
    """The check after a saturated one publishes Overloaded 0: PipelineOverloadedAlarm ignores
    missing data, so that 0 is what sets it back to OK."""
    saturated = {"checked_at": time.time() - 30, "saturated": True, "state": "saturated", "strain": 2}
    (document,) = check_work_round(capsys, lambda_context, previous=saturated)
    assert value(document, "Overloaded") == 0


# --- the metrics module ------------------------------------------------------------------------

def test_concurrent_invocations_in_one_process_keep_their_metrics_apart(capsys: pytest.CaptureFixture) -> None:
    """The local emulation runs drain workers as threads of one process (Lambda never does)."""
    barrier = threading.Barrier(2)

    @m.metrics.log_metrics
    def invocation(event: dict, _context: Any) -> None:
        m.metrics.add(m.IMAGES_PROCESSED, m.MetricUnit.Count, event["n"], {"site": "s", "line": event["line"]})
        barrier.wait(timeout=5)  # both have added before either flushes
        m.metrics.add(m.ANOMALIES, m.MetricUnit.Count, event["n"], {"site": "s", "line": event["line"]})

    threads = [threading.Thread(target=invocation, args=({"n": n, "line": f"l{n}"}, None)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    documents = emf_documents(capsys.readouterr().out)
    assert sorted((d["line"], value(d, "ImagesProcessed"), value(d, "Anomalies")) for d in documents) == [
        ("l1", 1, 1), ("l2", 2, 2)]


def test_service_name_does_not_change_the_dimension_sets_the_alarms_match(
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "somebody-set-this")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "plant-7")

    @m.metrics.log_metrics
    def invocation(_event: Any, _context: Any) -> None:
        m.record_load(arrival_per_minute=1, drain_per_minute=2, units=1, overloaded=False, backlog_minutes=0,
                      history_events=9)

    invocation({}, None)
    (document,) = emf_documents(capsys.readouterr().out)
    assert dimension_sets(document) == [[]] and "service" not in document
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "plant-7"


def test_a_broken_metric_never_fails_the_handler(capsys: pytest.CaptureFixture) -> None:
    @m.metrics.log_metrics
    def invocation(_event: Any, _context: Any) -> str:
        m.metrics.add("", m.MetricUnit.Count, 1)  # Powertools refuses the name
        m.metrics.add(m.MODEL_STARTS, m.MetricUnit.Count, 1)
        return "done"

    assert invocation({}, None) == "done"
    (document,) = emf_documents(capsys.readouterr().out)
    assert definitions(document) == {"ModelStarts": "Count"}
    m.metrics.add(m.MODEL_STOPS, m.MetricUnit.Count, 1)  # outside an invocation: dropped, no error
    assert emf_documents(capsys.readouterr().out) == []


def test_minutes_since() -> None:
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)
    assert m.minutes_since("2026-11-23T11:30:00+00:00", now) == 30
    assert m.minutes_since("2026-11-23T11:30:00Z", now) == 30
    assert m.minutes_since("2026-11-23T11:30:00", now) == 30  # naive: UTC
    assert m.minutes_since("2026-11-23T12:30:00+00:00", now) == 0  # clock skew never goes negative
    for unknown in ("", None, "yesterday", 5):
        assert m.minutes_since(unknown, now) is None


# --- the template reads what the functions write ------------------------------------------------

def _emitted() -> set[str]:
    return {getattr(m, name) for name in dir(m) if name.isupper() and name not in ("NAMESPACE", "MINUTES")
            and isinstance(getattr(m, name), str)}


def test_template_namespace_dashboard_and_alarms_use_the_emitted_metric_names() -> None:
    template = load_template()
    assert template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == m.NAMESPACE
    resources = template["Resources"]
    alarm_metrics = []
    for spec in resources.values():
        if spec["Type"] != "AWS::CloudWatch::Alarm":
            continue
        assert spec["Properties"]["AlarmActions"], "an alarm nobody hears"
        for query in spec["Properties"]["Metrics"]:
            query = query.get("Fn::If", [None, query])[1]  # a backend's own metrics: as with one that has them
            stat = query.get("MetricStat")
            if stat and stat["Metric"]["Namespace"] == m.NAMESPACE:
                assert "Dimensions" not in stat["Metric"], "alarms read the pipeline totals"
                alarm_metrics.append(stat["Metric"]["MetricName"])
    assert set(alarm_metrics) == {m.HOSTED_MODEL_MINUTES, m.HOSTED_MODEL_AGE_MINUTES, m.OVERLOADED}
    body, variables = resources["PipelineDashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert variables["Namespace"] == m.NAMESPACE
    on_dashboard = (set(re.findall(r'"\$\{Namespace\}", "(\w+)"', body))
                    | set(re.findall(r'MetricName=\\"(\w+)\\"', body)))
    assert on_dashboard == _emitted(), "every emitted metric is on the dashboard, and nothing else"
    check_work_policy = next(statement for statement in resources["CheckWorkFunction"]["Properties"]["Policies"][0][
        "Statement"] if statement.get("Action") == "sqs:GetQueueAttributes")
    assert {"Fn::GetAtt": ["ImageQueue", "Arn"]} in check_work_policy["Resource"], "the queue it sizes the drain from"
