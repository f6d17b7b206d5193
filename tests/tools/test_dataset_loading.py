"""A dataset read back for `model fit`/`evaluate`: from S3, a local manifest or a folder; splits; damaged data."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from batchsight_tools.dataset.cli import main as dataset_main
from batchsight_tools.dataset.loading import load
from batchsight_tools.dataset.manifest import sha256
from batchsight_tools.dataset.split import HOLDOUT_PERCENT, held_out
from batchsight_tools.models.arguments import Failure, UsageError
from tests.tools import models_support
from tests.tools.models_support import Aws

moto_endpoint, aws, labelled = models_support.moto_endpoint, models_support.aws, models_support.labelled


def _built(aws: Aws, labelled: Path, name: str = "parts") -> str:
    assert dataset_main(["build", "--bucket", aws.bucket, "--name", name, "--folder", str(labelled), *aws.args]) == 0
    return f"s3://{aws.bucket}/datasets/{name}/manifest.jsonl"


def test_the_split_holds_out_a_fifth_by_image_id_the_same_every_time() -> None:
    ids = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(5000)]
    share = sum(map(held_out, ids)) / len(ids)
    assert abs(share - HOLDOUT_PERCENT / 100) < 0.02
    assert [held_out(i) for i in ids] == [held_out(i) for i in ids]


def test_a_manifest_in_s3_loads_its_images_checked_and_its_checksum(aws: Aws, labelled: Path) -> None:
    uri = _built(aws, labelled)
    dataset = load(uri, lambda: aws.s3)
    files = {sha256(p.read_bytes()): kind for kind in ("normal", "anomaly") for p in (labelled / kind).iterdir()}
    assert {image.image_id: ("anomaly" if image.anomalous else "normal") for image in dataset.images} == files
    manifest = aws.s3.get_object(Bucket=aws.bucket, Key="datasets/parts/manifest.jsonl")["Body"].read()
    assert dataset.sha256 == sha256(manifest)
    evaluation = dataset.evaluation()
    assert {i.image_id for i in evaluation} == {i for i in files if held_out(i)}
    assert not {i.image_id for i in evaluation} & {i.image_id for i in dataset.training()}


def test_a_local_copy_of_the_manifest_reads_the_same_dataset(aws: Aws, labelled: Path, tmp_path: Path) -> None:
    uri = _built(aws, labelled)
    local = tmp_path / "manifest.jsonl"
    local.write_bytes(aws.s3.get_object(Bucket=aws.bucket, Key="datasets/parts/manifest.jsonl")["Body"].read())
    assert load(str(local), lambda: aws.s3).images == load(uri, lambda: aws.s3).images


def test_a_folders_checksum_names_its_labelled_images_wherever_it_is(labelled: Path, tmp_path: Path) -> None:
    shutil.copytree(labelled, tmp_path / "copy")
    assert load(str(tmp_path / "copy"), lambda: None).sha256 == load(str(labelled), lambda: None).sha256
    moved = next((tmp_path / "copy" / "normal").iterdir())
    moved.rename(tmp_path / "copy" / "anomaly" / moved.name)     # relabelled: another dataset
    assert load(str(tmp_path / "copy"), lambda: None).sha256 != load(str(labelled), lambda: None).sha256


def test_a_manifest_line_whose_image_is_missing_is_named(aws: Aws, labelled: Path) -> None:
    uri = _built(aws, labelled)
    lines = aws.s3.get_object(Bucket=aws.bucket, Key="datasets/parts/manifest.jsonl")["Body"].read().splitlines()
    gone = json.loads(lines[2])["source-ref"].split("/", 3)[3]
    aws.s3.delete_object(Bucket=aws.bucket, Key=gone)
    with pytest.raises(UsageError, match=rf"manifest.jsonl line 3: image s3://{aws.bucket}/{gone} is missing"):
        load(uri, lambda: aws.s3)


def test_an_image_changed_after_the_build_is_a_checksum_mismatch(aws: Aws, labelled: Path) -> None:
    uri = _built(aws, labelled)
    line = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key="datasets/parts/manifest.jsonl")["Body"].read()
                      .splitlines()[0])
    aws.s3.put_object(Bucket=aws.bucket, Key=line["source-ref"].split("/", 3)[3], Body=b"other bytes")
    with pytest.raises(Failure, match=r"line 1: s3://.*: checksum mismatch: its SHA-256 is [0-9a-f]{12}\.\.\., the "
                                      r"manifest says"):
        load(uri, lambda: aws.s3)


@pytest.mark.parametrize("where, message", [
    ("s3://{bucket}/datasets/none/manifest.jsonl", r"no such object; build it with `batchsight dataset build`"),
    ("{tmp}/nothing", r"no such file or folder"),
])
def test_a_dataset_that_is_not_there_is_a_usage_error(aws: Aws, tmp_path: Path, where: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load(where.format(bucket=aws.bucket, tmp=tmp_path), lambda: aws.s3)


def test_an_empty_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.jsonl").write_text("\n")
    with pytest.raises(UsageError, match="holds no images"):
        load(str(tmp_path / "m.jsonl"), lambda: None)
