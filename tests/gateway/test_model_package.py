"""The gateway's reader of model packages (model_package.py): a checked model file, or an error
that says what is wrong and what to do. S3 is moto's, in this process."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from batchsight.model_package import (
    ModelIdentity, ModelRefused, ModelUnavailable, is_package, prepare, sha256_of,
)
from tests.gateway.model_support import folder_package, s3_package

BUCKET = "models-bucket"


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


class Counting:
    """An S3 client that counts the downloads it is asked for."""

    def __init__(self, s3: Any) -> None:
        self.s3, self.downloads = s3, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.s3, name)

    def download_file(self, *args: Any) -> None:
        self.downloads += 1
        self.s3.download_file(*args)


@pytest.mark.parametrize("source, expected", [
    ("s3://b/models/castings/3/", True), ("s3://b/models/castings/3/package.json", True),
    ("s3://b/models/castings-v3.npz", False), ("/opt/models/castings/3/", True),
    ("/opt/models/castings/3/package.json", True), ("/opt/models/detector.npz", False),
])
def test_a_package_is_told_from_a_model_file_by_its_name(source: str, expected: bool) -> None:
    assert is_package(source) is expected


def test_an_existing_folder_is_a_package(tmp_path: Path) -> None:
    assert is_package(str(tmp_path))


def test_a_folder_package_gives_its_checked_file_and_identity(tmp_path: Path, fitted_model: Path) -> None:
    folder = folder_package(tmp_path / "castings" / "3", "castings", "3", fitted_model)
    model = prepare(str(folder), s3=None, models_folder=tmp_path / "work")
    assert model.identity == ModelIdentity("castings", "3") and str(model.identity) == "castings version 3"
    assert model.path == folder / "model.npz" and model.sha256 == sha256_of(fitted_model)
    assert prepare(str(folder / "package.json"), s3=None, models_folder=tmp_path).path == model.path


def test_a_file_changed_after_publishing_is_refused(tmp_path: Path, fitted_model: Path) -> None:
    folder = folder_package(tmp_path / "p", "castings", "4", fitted_model, tamper=True)
    with pytest.raises(ModelRefused, match=r"castings version 4 refused: its model\.npz has SHA-256 .* not the .* "
                                           r"its package\.json gives .*publish the version again"):
        prepare(str(folder), s3=None, models_folder=tmp_path)


def test_a_file_of_the_wrong_size_is_refused_without_hashing_it(tmp_path: Path, fitted_model: Path) -> None:
    folder = folder_package(tmp_path / "p", "castings", "4", fitted_model)
    (folder / "model.npz").write_bytes(b"short")
    with pytest.raises(ModelRefused, match="is 5 bytes, not the"):
        prepare(str(folder), s3=None, models_folder=tmp_path)


def test_a_missing_model_file_or_package_json_is_unavailable_and_says_what_to_deploy(tmp_path: Path,
                                                                                     fitted_model: Path) -> None:
    folder = folder_package(tmp_path / "p", "castings", "4", fitted_model)
    (folder / "model.npz").unlink()
    with pytest.raises(ModelUnavailable, match=r"model\.npz, the file its package\.json lists, is missing"):
        prepare(str(folder), s3=None, models_folder=tmp_path)
    with pytest.raises(ModelUnavailable, match=r"has no readable package\.json .*deploy the package"):
        prepare(str(tmp_path / "empty") + "/", s3=None, models_folder=tmp_path)


@pytest.mark.parametrize("document, error", [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", '"v": 1'),
    (json.dumps({"v": 1, "name": "castings", "version": "3"}), "lacks a valid files.model"),
    (json.dumps({"v": 1, "name": "castings", "version": "three", "files": {}}), "lacks a valid version"),
    (json.dumps({"v": 1, "name": "castings", "version": "3",
                 "files": {"model": {"key": "../etc/passwd", "sha256": "0" * 64, "bytes": 1}}}),
     "lacks a valid files.model.key"),
    (json.dumps({"v": 1, "name": "castings", "version": "3",
                 "files": {"model": {"key": "model.npz", "sha256": "ABC", "bytes": 1}}}),
     "lacks a valid files.model.sha256"),
])
def test_a_package_json_that_is_not_one_is_refused(tmp_path: Path, document: str, error: str) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "package.json").write_text(document)
    with pytest.raises(ModelRefused, match=error.replace(".", r"\.")) as refused:
        prepare(str(tmp_path / "p"), s3=None, models_folder=tmp_path)
    assert "publish the version again" in str(refused.value)


def test_a_model_file_is_taken_as_it_is(tmp_path: Path) -> None:
    model = prepare(str(tmp_path / "detector.npz"), s3=None, models_folder=tmp_path)
    assert model.identity == ModelIdentity("detector.npz") and model.sha256 == ""  # the server says if it is missing


def test_an_s3_package_is_fetched_once_checked_and_kept_per_version(tmp_path: Path, s3: Any,
                                                                    fitted_model: Path) -> None:
    source = s3_package(s3, BUCKET, "castings", "3", fitted_model)
    counting = Counting(s3)
    model = prepare(source, s3=counting, models_folder=tmp_path / "models")
    assert model.path == tmp_path / "models" / "castings" / "3" / "model.npz"
    assert model.path.read_bytes() == fitted_model.read_bytes() and model.identity == ModelIdentity("castings", "3")
    assert prepare(source, s3=counting, models_folder=tmp_path / "models") == model
    assert counting.downloads == 1, "checked again, not fetched again"
    model.path.write_bytes(b"damaged on the gateway's disk")
    assert prepare(source + "package.json", s3=counting, models_folder=tmp_path / "models").sha256 == model.sha256
    assert counting.downloads == 2, "a damaged copy is fetched again"


def test_an_s3_package_whose_file_does_not_match_is_refused_and_not_kept(tmp_path: Path, s3: Any,
                                                                          fitted_model: Path) -> None:
    source = s3_package(s3, BUCKET, "castings", "5", fitted_model, tamper=True)
    with pytest.raises(ModelRefused, match="does not match|has SHA-256"):
        prepare(source, s3=s3, models_folder=tmp_path)
    assert not any(p.is_file() for p in tmp_path.rglob("*")), "nothing half-checked is left to be used"


def test_an_unknown_version_names_the_published_ones(tmp_path: Path, s3: Any, fitted_model: Path) -> None:
    s3_package(s3, BUCKET, "castings", "2", fitted_model, published=("1",))
    with pytest.raises(ModelUnavailable, match=r"model 'castings' has no version 7 in s3://models-bucket "
                                               r"\(published: 1, 2; current: 2\)"):
        prepare(f"s3://{BUCKET}/models/castings/7/", s3=s3, models_folder=tmp_path)
    with pytest.raises(ModelUnavailable, match="model 'other' has no index .*publish it first"):
        prepare(f"s3://{BUCKET}/models/other/1/", s3=s3, models_folder=tmp_path)
    with pytest.raises(ModelUnavailable, match="does not exist"):
        prepare(f"s3://{BUCKET}/models/castings-v9.npz", s3=s3, models_folder=tmp_path)


def test_a_package_copied_under_another_version_is_refused(tmp_path: Path, s3: Any, fitted_model: Path) -> None:
    s3_package(s3, BUCKET, "castings", "3", fitted_model)
    s3.copy_object(Bucket=BUCKET, Key="models/castings/4/package.json",
                   CopySource={"Bucket": BUCKET, "Key": "models/castings/3/package.json"})
    with pytest.raises(ModelRefused, match=r"says model castings version 3, but it lies under castings/4/"):
        prepare(f"s3://{BUCKET}/models/castings/4/", s3=s3, models_folder=tmp_path)


def test_an_unreachable_bucket_is_unavailable_not_refused(tmp_path: Path, fitted_model: Path) -> None:
    from botocore.config import Config as BotoConfig

    unreachable = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9",
                               aws_access_key_id="x", aws_secret_access_key="y",
                               config=BotoConfig(retries={"total_max_attempts": 1}, connect_timeout=1))
    with pytest.raises(ModelUnavailable, match="cannot read s3://b/models/castings/3/package.json"):
        prepare("s3://b/models/castings/3/", s3=unreachable, models_folder=tmp_path)


def test_access_denied_says_both_things_it_can_mean(tmp_path: Path) -> None:
    from botocore.exceptions import ClientError

    class Denying:
        def get_object(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    with pytest.raises(ModelUnavailable, match=r"AccessDenied\): the version may not exist .*lacks s3:GetObject "
                                               r"on models/\*"):
        prepare("s3://b/models/castings/3/", s3=Denying(), models_folder=tmp_path)


@pytest.mark.parametrize("tamper", [False, True])
def test_doctor_checks_a_package_folder_as_the_component_will(tmp_path: Path, fitted_model: Path,
                                                              tamper: bool) -> None:
    from batchsight.config import config_from_dict
    from batchsight.doctor import _local_detector
    from tests.gateway.ingest_support import AWS

    folder = folder_package(tmp_path / "castings" / "3", "castings", "3", fitted_model, tamper=tamper)
    config = config_from_dict({"drop_folder": str(tmp_path / "d"), "work_folder": str(tmp_path / "w"), "aws": AWS,
                               "inference": {"mode": "edge", "model": str(folder)}})
    check = _local_detector(config, None)  # type: ignore[arg-type] - no AWS for a folder
    if tamper:
        assert not check.ok and "castings version 3 refused" in check.detail and "publish" in check.detail
    else:
        assert check.ok and check.detail.startswith("castings version 3 (") and "SHA-256 checked" in check.detail
