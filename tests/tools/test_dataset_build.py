"""`batchsight dataset build` against S3 in a moto server: sources merged, images uploaded, one manifest."""
from __future__ import annotations

import json
import re
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from batchsight.feedback import manifest_line as feedback_line
from batchsight_tools.dataset.cli import main
from batchsight_tools.dataset.manifest import loads, sha256
from tests.tools import models_support
from tests.tools.models_support import CASTING, MANIFEST_LINE_SCHEMA, Aws

moto_endpoint, aws, labelled = models_support.moto_endpoint, models_support.aws, models_support.labelled
DAY = "results/plant1/line3/cam1/2026/12/01"


def _manifest(aws: Aws, name: str) -> list[dict[str, object]]:
    body = aws.s3.get_object(Bucket=aws.bucket, Key=f"datasets/{name}/manifest.jsonl")["Body"].read()
    return [json.loads(line) for line in body.decode().splitlines()]


def _answer(aws: Aws, bucket: str, image: bytes, *, anomalous: bool, at: datetime, with_image: bool = True) -> str:
    """What the gateway leaves in the final bucket for an answered alert: the image and its label file."""
    key = f"{DAY}/{sha256(image)}.jpg"
    if with_image:
        aws.s3.put_object(Bucket=bucket, Key=key, Body=image)
    line = feedback_line(bucket=bucket, image_key=key, anomalous=anomalous, operator="ana", at=at.timestamp())
    aws.s3.put_object(Bucket=bucket, Key=key.rsplit(".", 1)[0] + ".label.manifest", Body=json.dumps(line) + "\n")
    return key


def _named(labelled: Path, target: Path) -> Path:
    """Some of the labelled images again, labelled by name only, and one name no pattern matches."""
    target.mkdir()
    for index, path in enumerate(sorted((labelled / "normal").iterdir())[:5]):
        shutil.copy2(path, target / f"part_ok_{index}{path.suffix}")
    shutil.copy2(sorted((labelled / "anomaly").iterdir())[0], target / "part_def_0.jpg")
    shutil.copy2(sorted((labelled / "anomaly").iterdir())[1], target / "unsorted_1.jpg")
    return target


def test_folders_file_names_and_feedback_make_one_deduplicated_manifest(
        aws: Aws, labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    final = aws.new_bucket("final")
    relabelled = sorted((labelled / "normal").iterdir())[0]          # a normal picture an operator calls a defect
    os.utime(relabelled, (1e9, 1e9))                                   # sorted into normal/ long before the answer
    answered = _answer(aws, final, relabelled.read_bytes(), anomalous=True, at=datetime(2026, 12, 1, tzinfo=UTC))
    _answer(aws, final, b"a picture that is gone", anomalous=False, at=datetime(2026, 12, 1, tzinfo=UTC),
            with_image=False)
    named = _named(labelled, tmp_path / "named")

    code = main(["build", "--bucket", aws.bucket, "--name", "parts", "--folder", str(labelled), "--files", str(named),
                 "--normal-pattern", "part_ok_*", "--anomaly-pattern", "part_def_*", "--feedback", final,
                 "--site", "plant1", "--line", "line3", *aws.args])

    out = capsys.readouterr().out
    assert code == 0, out
    lines = _manifest(aws, "parts")
    validator = jsonschema.Draft202012Validator(MANIFEST_LINE_SCHEMA)
    for line in lines:
        validator.validate(line)
    folder_images = {sha256(p.read_bytes()) for kind in ("normal", "anomaly") for p in (labelled / kind).iterdir()}
    assert len(lines) == len(folder_images)    # the named copies and the feedback image are the folder's pictures
    by_id = {line["anomaly-label-metadata"]["image-id"]: line for line in lines}
    winner = by_id[sha256(relabelled.read_bytes())]
    assert (winner["anomaly-label"], winner["source-ref"]) == (1, f"s3://{final}/{answered}")
    assert winner["anomaly-label-metadata"]["source"] == "feedback"
    uploaded = aws.keys("datasets/parts/images/")
    assert len(uploaded) == len(lines) - 1 and all(key.rsplit("/", 1)[1].split(".")[0] in by_id for key in uploaded)
    assert "from feedback: 1 (0 normal, 1 anomaly); 1 answers without their image in the final bucket" in out
    assert "1 file names matched no pattern (skipped)" in out
    assert "7 duplicate images merged (the latest label kept; 1 changed class)" in out


def test_a_second_build_of_the_same_sources_uploads_nothing_and_writes_the_same_bytes(
        aws: Aws, labelled: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["build", "--bucket", aws.bucket, "--name", "again", "--folder", str(labelled), *aws.args]
    assert main(argv) == 0
    first = aws.s3.get_object(Bucket=aws.bucket, Key="datasets/again/manifest.jsonl")["Body"].read()
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 images uploaded" in capsys.readouterr().out
    assert aws.s3.get_object(Bucket=aws.bucket, Key="datasets/again/manifest.jsonl")["Body"].read() == first


@pytest.mark.skipif(not (CASTING / "stream").is_dir(), reason="no shared casting images")
def test_the_casting_streams_file_names_add_its_279_normal_images(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["build", "--bucket", aws.bucket, "--name", "castings", "--folder", str(CASTING / "train"),
                 "--files", str(CASTING / "stream" / "images"), "--normal-pattern", "cast_ok_*", *aws.args])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "from file-name: 279 (279 normal, 0 anomaly); 21 file names matched no pattern (skipped)" in out
    labels = loads(aws.s3.get_object(Bucket=aws.bucket, Key="datasets/castings/manifest.jsonl")["Body"].read(), "m")
    assert sum(not label.anomalous for label in labels) == 279 + 30 and sum(label.anomalous for label in labels) == 40


@pytest.mark.parametrize("argv, message", [
    ([], r"give at least one source"),
    (["--files", "{labelled}/normal"], r"--files .*: give --normal-pattern and/or --anomaly-pattern"),
    (["--folder", "{labelled}", "--normal-pattern", "x*"], r"--normal-pattern and --anomaly-pattern go with --files"),
    (["--folder", "{labelled}", "--site", "plant1"], r"--site and --line select operator feedback"),
    (["--feedback", "final-bucket"], r"--feedback goes with --site SITE"),
    (["--folder", "{labelled}/normal"], r"has no normal/ and no anomaly/"),
    (["--folder", "{labelled}/none"], r"--folder .*none: no such folder"),
    (["--files", "{labelled}/normal", "--normal-pattern", "*", "--anomaly-pattern", "part*"],
     r"matches both --normal-pattern '\*' and --anomaly-pattern 'part\*'"),
])
def test_a_wrong_source_is_one_line_and_exit_2(aws: Aws, labelled: Path, argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    argv = [arg.replace("{labelled}", str(labelled)) for arg in argv]
    assert main(["build", "--bucket", aws.bucket, "--name", "bad", *argv, *aws.args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("batchsight dataset build: error: ")
    assert re.search(message, err[0]), err[0]
    assert aws.keys("datasets/bad/") == []


@pytest.mark.parametrize("kind, message", [
    ("normal", r"holds only normal images \(\d+\); evaluation needs anomaly images too"),
    ("anomaly", r"holds only anomaly images \(\d+\); evaluation needs normal images too"),
])
def test_a_one_class_dataset_is_refused_and_nothing_is_written(
        aws: Aws, labelled: Path, tmp_path: Path, kind: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(labelled / kind, tmp_path / "one" / kind)
    assert main(["build", "--bucket", aws.bucket, "--name", "one", "--folder", str(tmp_path / "one"),
                 *aws.args]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert aws.keys("datasets/one/") == []


def test_feedback_with_no_answers_is_an_empty_dataset(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    final = aws.new_bucket("final")
    assert main(["build", "--bucket", aws.bucket, "--name", "none", "--feedback", final, "--site", "plant9",
                 *aws.args]) == 2
    assert "no labelled images found" in capsys.readouterr().err
