"""The dataset manifest line: its shape (the proposed schema), reading foreign and feedback lines, merging."""
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from batchsight.feedback import manifest_line as feedback_line
from batchsight_tools.dataset.manifest import Label, ManifestError, dumps, from_line, loads, merge, sha256, to_line
from tests.tools.models_support import MANIFEST_LINE_SCHEMA

ID = sha256(b"picture")
OTHER = sha256(b"another picture")
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def _label(image_id: str = ID, *, anomalous: bool = False, at: datetime = T0, source: str = "folder") -> Label:
    return Label(image_id=image_id, anomalous=anomalous, created_at=at, source=source, origin=f"/data/{image_id[:6]}",
                 source_ref=f"s3://model-bucket/datasets/d/images/{image_id}.jpg")


@pytest.mark.parametrize("anomalous", [False, True])
def test_a_line_is_a_ground_truth_classification_line_and_matches_the_proposed_schema(anomalous: bool) -> None:
    line = to_line(_label(anomalous=anomalous))
    jsonschema.Draft202012Validator(MANIFEST_LINE_SCHEMA).validate(line)
    metadata = line["anomaly-label-metadata"]
    assert line["anomaly-label"] == int(anomalous)
    assert metadata["class-name"] == ("anomaly" if anomalous else "normal")
    assert metadata["type"] == "groundtruth/image-classification" and metadata["human-annotated"] == "yes"
    assert metadata["creation-date"] == "2026-12-01T08:00:00.000000"


def test_lines_read_back_as_they_were_written_in_image_id_order() -> None:
    labels = [_label(OTHER, anomalous=True), _label(ID)]
    data = dumps(labels)
    assert dumps(reversed(labels)) == data   # equal datasets are equal bytes, whatever the order given
    read = loads(data, "m.jsonl")
    assert [label.image_id for label in read] == sorted([ID, OTHER])
    assert {(label.image_id, label.anomalous, label.created_at, label.source) for label in read} == {
        (ID, False, T0, "folder"), (OTHER, True, T0, "folder")}
    assert read[0].where == "m.jsonl line 1"


def test_the_gateways_feedback_label_file_is_a_manifest_line() -> None:
    """component/batchsight/feedback.py writes it; the image id is the key's stem."""
    key = f"results/plant1/line3/cam1/2026/12/01/{ID}.jpg"
    line = feedback_line(bucket="final-bucket", image_key=key, anomalous=True, operator="ana", at=T0.timestamp())
    label = from_line(json.dumps(line), "feedback", source="feedback")
    assert (label.image_id, label.anomalous, label.created_at, label.source) == (ID, True, T0, "feedback")
    assert label.extra == {"operator": "ana"} and label.source_ref == f"s3://final-bucket/{key}"
    jsonschema.Draft202012Validator(MANIFEST_LINE_SCHEMA).validate(to_line(label))


def test_a_foreign_labelling_jobs_attribute_is_read_by_its_metadata() -> None:
    line = {"source-ref": "s3://b/x.png", "defects": 1,
            "defects-metadata": {"class-name": "anomaly", "type": "groundtruth/image-classification",
                                 "creation-date": "2026-12-01T08:00:00Z"}}
    label = from_line(json.dumps(line), "m")
    assert label.anomalous and label.image_id == "" and label.created_at == T0


@pytest.mark.parametrize("text, message", [
    ("{not json", r"m line 2: not JSON"),
    ("[1]", r"not a JSON object"),
    ('{"anomaly-label": 0, "anomaly-label-metadata": {}}', r"\"source-ref\" must be the image's s3://bucket/key"),
    ('{"source-ref": "s3://b/k.jpg"}', r"no image-classification label"),
    ('{"source-ref": "s3://b/k.jpg", "anomaly-label": 2, "anomaly-label-metadata": {}}', r"must be 0 \(normal\) or 1"),
    ('{"source-ref": "s3://b/k.jpg", "anomaly-label": 1, "anomaly-label-metadata": {"class-name": "normal"}}',
     r"1 says anomaly but its class-name says 'normal'"),
    ('{"source-ref": "s3://b/k.jpg", "anomaly-label": 1, "anomaly-label-metadata": {"image-id": "abc"}}',
     r"image-id 'abc' is not a SHA-256"),
    ('{"source-ref": "s3://b/k.jpg", "anomaly-label": 1, "anomaly-label-metadata": {"creation-date": "soon"}}',
     r"creation-date 'soon' is not an ISO 8601 time"),
])
def test_a_line_that_is_not_a_labelled_image_is_named(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        loads(("\n" + text).encode(), "m")   # the blank first line is skipped, the error names line 2
    with pytest.raises(ManifestError, match="line 2"):
        loads(("\n" + text).encode(), "m")


def test_a_binary_file_is_not_a_manifest() -> None:
    with pytest.raises(ManifestError, match="not a text file"):
        loads(b"\xff\xfe\x00", "m")


def test_merge_keeps_one_label_per_image_the_latest_winning() -> None:
    later = T0 + timedelta(hours=1)
    merged = merge([_label(ID), _label(OTHER), _label(ID, anomalous=True, at=later, source="feedback"),
                    _label(OTHER, at=T0 - timedelta(days=1), source="file-name")])
    assert [(label.image_id, label.anomalous, label.source) for label in merged.labels] == sorted(
        [(ID, True, "feedback"), (OTHER, False, "folder")])
    assert (merged.duplicates, merged.relabelled) == (2, 1)


def test_of_labels_made_at_the_same_time_the_later_given_wins() -> None:
    merged = merge([_label(ID, source="folder"), _label(ID, anomalous=True, source="feedback")])
    assert merged.labels[0].source == "feedback"
