"""The data contracts, checked from both sides: what the edge writes, the cloud reads, and back.

Edge and cloud never import each other at run time; this test is the one place that holds
both, to prove they agree on the S3 keys, the SQS message, the execution input, the result
document and the MQTT payloads (all against the JSON Schemas in component/batchsight/schemas).
"""
from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import pytest

from batchsight import alerts, results
from batchsight.cloud_link import CloudLink
from batchsight.config import config_from_dict
from batchsight.journal import ImageRecord, ImageState
from batchsight_pipeline.contracts import PoisonMessage, parse_message, result_document
from tests.support import load_schema

CONFIG = config_from_dict({
    "site": "plant-9", "line": "press_2", "device": "gw.3",
    "drop_folder": "/tmp/drop", "work_folder": "/tmp/work",
    "aws": {"source_bucket": "src", "final_bucket": "final", "queue_url": "https://q", "state_machine_arn":
            "arn:aws:states:eu-west-1:123456789012:stateMachine:batch"}})


def _record(captured_at: str = "2026-12-31T23:59:59.999Z", **extra: object) -> ImageRecord:
    values = dict(image_id="ab" * 32, file_name="cam 1/ü.jpg", path="/tmp/work/spool/x.jpg", ext="jpg",
                  size=10, width=640, height=480, captured_at=captured_at, seen_at=0.0,
                  state=ImageState.SUBMITTED, batch_id="gw-20261231T235959Z-1a2b3c4d",
                  is_anomalous=None, confidence=None, result_json=None)
    values.update(extra)
    return ImageRecord(**values)  # type: ignore[arg-type]


class _Recorder:
    """Captures what the edge would send to SQS and Step Functions (the shapes, not a fake AWS)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def send_message_batch(self, **kwargs: object) -> dict:
        self.calls.append(("send_message_batch", kwargs))
        return {"Successful": [], "Failed": []}

    def start_execution(self, **kwargs: object) -> dict:
        self.calls.append(("start_execution", kwargs))
        return {"executionArn": "arn:aws:states:eu-west-1:123456789012:execution:batch:x"}


def _edge_message(record: ImageRecord) -> dict:
    link = CloudLink(CONFIG, journal=None, s3=None, sqs=None, sfn=None)  # type: ignore[arg-type]
    return link.message(record.batch_id or "", record)


def test_sqs_message_from_edge_matches_schema_and_cloud_parser() -> None:
    record = _record()
    message = _edge_message(record)
    jsonschema.validate(message, load_schema("image_message"))
    parsed = parse_message(json.dumps(message), source_bucket="src", final_bucket="final")
    assert (parsed.image_id, parsed.site, parsed.line, parsed.device) == (record.image_id, "plant-9", "press_2", "gw.3")
    assert parsed.key == message["key"]


@pytest.mark.parametrize("captured_at", ["2026-12-31T23:59:59.999Z", "2026-01-01T00:00:00.000Z"])
def test_result_key_is_computed_identically_on_both_sides(captured_at: str) -> None:
    record = _record(captured_at=captured_at)
    cloud_key = parse_message(json.dumps(_edge_message(record)), source_bucket="src", final_bucket="final").result_key()
    assert cloud_key == results.result_key(CONFIG, record)
    year, month, day = captured_at[:4], captured_at[5:7], captured_at[8:10]
    assert cloud_key.startswith(f"results/plant-9/press_2/gw.3/{year}/{month}/{day}/")


def test_result_document_from_cloud_is_read_by_edge_and_published_as_valid_payloads() -> None:
    record = _record()
    message = parse_message(json.dumps(_edge_message(record)), source_bucket="src", final_bucket="final")
    detect = {"Source": {"Type": "direct"}, "IsAnomalous": True, "Confidence": 0.93}
    document = result_document(message, result=detect, model={"backend": "local", "name": "m.npz"},
                               execution="arn:aws:states:eu-west-1:123456789012:execution:batch:x")
    jsonschema.validate(document, load_schema("result_document"))
    parsed = results.parse_result(json.dumps(document).encode(), record.image_id)
    stored = _record(is_anomalous=True, confidence=0.93, result_json=json.dumps(parsed),
                     state=ImageState.RESULT_STORED)
    payload = alerts.result_payload(CONFIG, stored)
    jsonschema.validate(payload, load_schema("mqtt_result"))
    assert payload["is_anomalous"] is True and payload["confidence"] == 0.93
    assert payload["result_key"] == message.result_key()
    assert len(json.dumps(payload)) < 2048, "PLC payloads stay small"


def test_edge_rejects_a_result_for_another_image() -> None:
    with pytest.raises(results.ResultError):
        results.parse_result(json.dumps({"v": 1, "image_id": "cd" * 32, "result": {"IsAnomalous": False}}).encode(),
                             "ab" * 32)


def test_execution_input_and_batch_and_status_payloads_match_schemas() -> None:
    recorder = _Recorder()
    link = CloudLink(CONFIG, journal=None, s3=None, sqs=recorder, sfn=recorder)  # type: ignore[arg-type]
    link._start("gw-20261231T235959Z-1a2b3c4d", 12)
    (_, call), = recorder.calls
    assert call["name"] == "gw-20261231T235959Z-1a2b3c4d"
    jsonschema.validate(json.loads(call["input"]), load_schema("execution_input"))
    jsonschema.validate({"v": 1, "trigger": "schedule"}, load_schema("execution_input"))
    stored = [_record(is_anomalous=True, confidence=0.9), _record(is_anomalous=False, confidence=0.8)]
    jsonschema.validate(alerts.batch_payload(CONFIG, "b", stored), load_schema("mqtt_batch"))
    status = alerts.status_payload(CONFIG, state="running", counts={"validated": 3, "quarantined": 1}, cloud="ok")
    jsonschema.validate(status, load_schema("mqtt_status"))
    jsonschema.validate({"v": 1, "state": "offline"}, load_schema("mqtt_status"))  # the MQTT last will


def test_schedule_input_in_template_matches_schema() -> None:
    from batchsight_tools.localcloud.template import load_template

    schedule = load_template()["Resources"]["BatchStateMachine"]["Properties"]["Events"]["SafetyNet"]
    jsonschema.validate(json.loads(schedule["Properties"]["Input"]), load_schema("execution_input"))


# --- which model judged: the version on every verdict, the shadow's figures, the model package -----

@pytest.mark.parametrize("model, version", [({"backend": "lambda", "name": "castings", "version": "7"}, "7"),
                                            ({"backend": "local", "name": "m.npz"}, "")])
def test_a_cloud_verdict_names_its_model_version_when_the_document_does(model: dict, version: str) -> None:
    record = _record()
    message = parse_message(json.dumps(_edge_message(record)), source_bucket="src", final_bucket="final")
    document = result_document(message, result={"Source": {"Type": "direct"}, "IsAnomalous": False,
                                                 "Confidence": 0.8}, model=model,
                               execution="arn:aws:states:eu-west-1:123456789012:execution:batch:x")
    jsonschema.validate(document, load_schema("result_document"))
    stored = _record(is_anomalous=False, confidence=0.8, state=ImageState.RESULT_STORED,
                     result_json=json.dumps(results.parse_result(json.dumps(document).encode(), record.image_id)))
    payload = alerts.result_payload(CONFIG, stored)
    jsonschema.validate(payload, load_schema("mqtt_result"))
    assert (payload["model"], payload["model_version"]) == (model["name"], version)


def test_an_edge_verdict_and_its_correction_name_both_versions() -> None:
    local = {"v": 1, "image_id": "ab" * 32, "judged_by": "edge", "processed_at": "2026-12-31T23:59:59.999Z",
             "model": {"name": "castings", "version": "3"}, "result": {"IsAnomalous": True, "Confidence": 0.7}}
    edge = _record(is_anomalous=True, confidence=0.7, route="edge", result_json=json.dumps(local),
                   state=ImageState.RESULT_STORED)
    payload = alerts.result_payload(CONFIG, edge)
    jsonschema.validate(payload, load_schema("mqtt_result"))
    assert (payload["model"], payload["model_version"], payload["judged_by"]) == ("castings", "3", "edge")
    cloud = {**local, "judged_by": "cloud", "model": {"backend": "lambda", "name": "castings", "version": "4"},
             "result": {"IsAnomalous": False, "Confidence": 0.9}}
    audited = _record(is_anomalous=False, confidence=0.9, route="audit", local_json=json.dumps(local),
                      result_json=json.dumps(cloud), state=ImageState.RESULT_STORED)
    correction = alerts.correction_payload(CONFIG, audited)
    jsonschema.validate(correction, load_schema("mqtt_correction"))
    assert (correction["model_version"], correction["previous_model_version"]) == ("4", "3")


def test_payloads_without_the_version_fields_stay_valid() -> None:
    """A PLC program or a recorded payload from before the versions were added still validates."""
    document = {"processed_at": "2026-12-31T23:59:59.999Z", "model": {"name": "m.npz"}, "result": {}}
    payload = alerts.result_payload(CONFIG, _record(is_anomalous=False, confidence=0.5,
                                                    result_json=json.dumps(document)))
    del payload["model_version"]
    jsonschema.validate(payload, load_schema("mqtt_result"))
    status = alerts.status_payload(CONFIG, state="running", counts={}, cloud="ok")
    for name in ("model", "model_version", "shadow_model", "shadow_model_version"):
        del status[name]
    jsonschema.validate(status, load_schema("mqtt_status"))


def test_the_status_names_the_model_and_the_shadow_and_the_shadow_figures_match_their_schema() -> None:
    from batchsight.journal_shadow import ShadowPair, ShadowTally
    from batchsight.shadow import shadow_payload

    models = {"model": "castings", "model_version": "3", "shadow_model": "castings", "shadow_model_version": "4"}
    status = alerts.status_payload(CONFIG, state="running", counts={}, cloud="ok", judging="edge", models=models,
                                   alarms=[f"alarm {n}" for n in range(12)])
    jsonschema.validate(status, load_schema("mqtt_status"))
    assert {k: status[k] for k in models} == models
    tally = ShadowTally(ShadowPair("castings", "3", "castings", "4"), compared=120, agreements=117,
                        normal_to_anomalous=2, anomalous_to_normal=1, first_at=1.8e9, updated_at=1.8e9 + 60,
                        reported=100)
    figures = shadow_payload(CONFIG, tally)
    jsonschema.validate(figures, load_schema("mqtt_shadow"))
    assert (figures["agreement_rate"], figures["disagreements"]) == (0.975, 3)
    assert len(json.dumps(figures)) < 2048, "PLC payloads stay small"


def test_the_gateway_reads_model_packages_as_the_contract_writes_them(tmp_path) -> None:
    """The gateway's own reader (never the cloud's code) takes a package.json the schema allows."""
    from batchsight.model_package import ModelIdentity, prepare, read_package
    from tests.cloud.model_packages import package

    data = b"model bytes"
    document = package("castings", "12", data)  # checked against model_package.schema.json
    assert read_package(json.dumps(document).encode(), "here")["files"]["model"]["key"] == "model.npz"
    (tmp_path / "package.json").write_text(json.dumps(document))
    (tmp_path / "model.npz").write_bytes(data)
    assert prepare(str(tmp_path), s3=None, models_folder=tmp_path).identity == ModelIdentity("castings", "12")


def test_the_part_context_travels_from_the_edge_message_into_the_result_document_and_back() -> None:
    record = _record(part_id="P-00012", lot="LOT 7/ü")
    message = _edge_message(record)
    jsonschema.validate(message, load_schema("image_message"))
    parsed = parse_message(json.dumps(message), source_bucket="src", final_bucket="final")
    document = result_document(parsed, result={"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.1},
                               model={"backend": "local", "name": "m.npz"}, execution="x")
    jsonschema.validate(document, load_schema("result_document"))
    assert (document["part_id"], document["lot"]) == ("P-00012", "LOT 7/ü")
    stored = _record(part_id="P-00012", lot="LOT 7/ü", is_anomalous=False, confidence=0.1,
                     result_json=json.dumps(document), state=ImageState.RESULT_STORED)
    payload = alerts.result_payload(CONFIG, stored)
    jsonschema.validate(payload, load_schema("mqtt_result"))
    assert (payload["part_id"], payload["lot"]) == ("P-00012", "LOT 7/ü")


def test_payloads_from_before_part_context_stay_valid() -> None:
    document = {"processed_at": "2026-12-31T23:59:59.999Z", "model": {"name": "m.npz"}, "result": {}}
    payload = alerts.result_payload(CONFIG, _record(is_anomalous=False, confidence=0.5,
                                                    result_json=json.dumps(document)))
    del payload["part_id"], payload["lot"]
    jsonschema.validate(payload, load_schema("mqtt_result"))


def test_a_message_from_a_gateway_without_part_context_gives_empty_fields() -> None:
    message = {k: v for k, v in _edge_message(_record()).items() if k not in ("part_id", "lot")}
    parsed = parse_message(json.dumps(message), source_bucket="src", final_bucket="final")
    document = result_document(parsed, result={"IsAnomalous": False}, model={"backend": "local", "name": "m.npz"},
                               execution="x")
    assert (document["part_id"], document["lot"]) == ("", "")


@pytest.mark.parametrize(("change", "says"), [
    ({"device": "gw.4"}, "outside its device's prefix"),        # another gateway's image, claimed as its own
    ({"key": "incoming/plant-9/press_2/gw.3/../gw.4/x.jpg"}, "outside its device's prefix"),
    ({"bucket": "someone-elses"}, "is not the source bucket"),
])
def test_a_message_pointing_outside_its_own_device_prefix_is_poison(change: dict, says: str) -> None:
    message = {**_edge_message(_record()), **change}
    with pytest.raises(PoisonMessage, match=says):
        parse_message(json.dumps(message), source_bucket="src", final_bucket="final")


def test_an_image_uploaded_to_the_final_bucket_lies_at_its_place_on_both_sides() -> None:
    """ImageUpload=final-bucket: the stack output SourceBucketName names the final bucket, so the
    gateway uploads each image to the key the cloud would have moved it to, next to its result."""
    config = replace(CONFIG, aws=replace(CONFIG.aws, source_bucket="final"))
    record = _record()
    link = CloudLink(config, journal=None, s3=None, sqs=None, sfn=None)  # type: ignore[arg-type]
    message = link.message(record.batch_id or "", record)
    jsonschema.validate(message, load_schema("image_message"))
    parsed = parse_message(json.dumps(message), source_bucket="final", final_bucket="final")
    assert message["bucket"] == "final" and message["key"] == parsed.image_key()
    assert parsed.in_place("final") and not parsed.in_place("src")
    assert message["key"] == results.result_key(config, record).replace(".json", ".jpg")
