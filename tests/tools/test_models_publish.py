"""`batchsight model publish` against S3 in moto: the contract's package, immutable versions, the gate,
all-or-nothing under injected failures, and the cloud's lambda backend judging with what was deployed."""
from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

import jsonschema
import pytest

from batchsight_detector import DetectorModel
from batchsight_pipeline import aws as pipeline_aws
from batchsight_pipeline import model_store
from batchsight_pipeline.backends.serverless import ServerlessDetectorBackend
from batchsight_tools.dataset.loading import load
from batchsight_tools.dataset.manifest import sha256
from batchsight_tools.models import publish as publishing
from batchsight_tools.models.cli import main
from batchsight_tools.models.evaluation import evaluate_images, metrics
from batchsight_tools.models.package import Candidate
from batchsight_tools.models.registry import Registry
from tests.support import load_schema
from tests.tools import models_support
from tests.tools.models_support import Aws, FailingS3, Fitted

moto_endpoint, aws, labelled, fitted = (models_support.moto_endpoint, models_support.aws, models_support.labelled,
                                        models_support.fitted)


def _publish(aws: Aws, model: Path, dataset: Path, *extra: str) -> int:
    return main(["publish", "--bucket", aws.bucket, "--model", str(model), "--dataset", str(dataset), *extra,
                 *aws.args])


def _package(aws: Aws, version: str) -> dict[str, object]:
    body = aws.s3.get_object(Bucket=aws.bucket, Key=f"models/inspection/{version}/package.json")["Body"].read()
    document: dict[str, object] = json.loads(body)
    return document


def _candidate(labelled: Path, model: Path) -> Candidate:
    dataset = load(str(labelled), lambda: None)
    detector = DetectorModel.load(model)
    return Candidate(model.read_bytes(), detector.method, detector.threshold,
                     metrics(evaluate_images(detector, dataset.evaluation())), dataset.location, dataset.sha256)


def test_a_published_version_is_the_contracts_package_and_the_index_lists_it(
        aws: Aws, labelled: Path, fitted: Fitted, capsys: pytest.CaptureFixture[str]) -> None:
    assert _publish(aws, fitted.good, labelled) == 0
    package = _package(aws, "1")
    jsonschema.Draft202012Validator(load_schema("model_package"),
                                    format_checker=jsonschema.FormatChecker()).validate(package)
    dataset = load(str(labelled), lambda: None)
    expected = metrics(evaluate_images(DetectorModel.load(fitted.good), dataset.evaluation()))
    assert package["metrics"] == {**expected, "milliseconds_per_image": package["metrics"]["milliseconds_per_image"]}
    assert package["dataset"] == {"manifest": dataset.location, "sha256": dataset.sha256}
    assert package["detector"] == {"version": metadata.version("batchsight"), "method": "aligned"}
    model_file = aws.s3.get_object(Bucket=aws.bucket, Key="models/inspection/1/model.npz")["Body"].read()
    assert package["files"] == {"model": {"key": "model.npz", "sha256": sha256(model_file), "bytes": len(model_file)}}
    assert model_file == fitted.good.read_bytes()
    index = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key="models/inspection/index.json")["Body"].read())
    jsonschema.Draft202012Validator(load_schema("model_index")).validate(index)
    assert (index["current"], list(index["versions"])) == (None, ["1"])
    assert index["versions"]["1"]["package"] == "models/inspection/1/package.json"
    assert aws.keys("models/inspection/.staging/") == []
    assert "no version is current yet; make it current with `batchsight model deploy" in capsys.readouterr().out


def test_versions_are_numbered_in_order_and_never_reuse_a_taken_number(aws: Aws, labelled: Path,
                                                                        fitted: Fitted) -> None:
    assert _publish(aws, fitted.good, labelled) == 0
    aws.s3.put_object(Bucket=aws.bucket, Key="models/inspection/2/model.npz", Body=b"left by a killed publish")
    assert _publish(aws, fitted.good, labelled) == 0
    assert aws.keys("models/inspection/3/") == ["models/inspection/3/model.npz", "models/inspection/3/package.json"]


def test_a_version_taken_meanwhile_is_never_overwritten(aws: Aws, labelled: Path, fitted: Fitted,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(aws.s3, aws.bucket, "inspection")
    first = publishing.publish(registry, _candidate(labelled, fitted.good))
    before = {key: aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read() for key in aws.keys("models/")}
    monkeypatch.setattr(publishing.index_rules, "next_version", lambda *_: first.version)   # a racing publisher
    with pytest.raises(publishing.Failure, match="version 1 of inspection was written by another publish meanwhile"):
        publishing.publish(registry, _candidate(labelled, fitted.poor))
    assert {key: aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read() for key in aws.keys("models/")} == before


def test_s3_refuses_a_second_write_of_a_version_key_in_moto(aws: Aws) -> None:
    """The conditional write publish relies on: moto 5.2.5 enforces IfNoneMatch="*" on PutObject."""
    registry = Registry(aws.s3, aws.bucket, "inspection")
    registry.put("models/inspection/1/package.json", b"{}", "application/json", IfNoneMatch="*")
    with pytest.raises(publishing.Conflict):
        registry.put("models/inspection/1/package.json", b"{}", "application/json", IfNoneMatch="*")


@pytest.mark.parametrize("operation, key, error", [
    ("put_object", ".staging/", ConnectionError),                    # the upload of the model file
    ("head_object", ".staging/", ConnectionError),                   # the check of the staged objects
    ("copy_object", "/2/model.npz", ConnectionError),                # placing the model file
    ("put_object", "/2/package.json", ConnectionError),              # placing the package
    ("put_object", "index.json", ConnectionError),                   # listing the version
    ("put_object", "index.json", KeyboardInterrupt),                 # Ctrl-C at the last moment
])
def test_a_failure_midway_leaves_nothing_half_published(aws: Aws, labelled: Path, fitted: Fitted, operation: str,
                                                        key: str, error: type[BaseException]) -> None:
    registry = Registry(aws.s3, aws.bucket, "inspection")
    publishing.publish(registry, _candidate(labelled, fitted.good))
    before = {k: aws.s3.get_object(Bucket=aws.bucket, Key=k)["Body"].read() for k in aws.keys("models/")}
    failing = FailingS3(aws.s3, operation, key, error)
    with pytest.raises(error):
        publishing.publish(Registry(failing, aws.bucket, "inspection"), _candidate(labelled, fitted.poor))
    assert failing.failed
    assert {k: aws.s3.get_object(Bucket=aws.bucket, Key=k)["Body"].read() for k in aws.keys("models/")} == before
    assert publishing.publish(registry, _candidate(labelled, fitted.poor)).version == "2"   # and it can go again


def test_the_gate_refuses_a_worse_version_says_by_how_much_and_force_overrides(
        aws: Aws, labelled: Path, fitted: Fitted, capsys: pytest.CaptureFixture[str]) -> None:
    assert _publish(aws, fitted.good, labelled) == 0
    assert main(["deploy", "--bucket", aws.bucket, "--version", "1", *aws.args]) == 0
    capsys.readouterr()
    assert _publish(aws, fitted.poor, labelled) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "refused: the candidate's AUROC is " in err and "below current version 1's (margin 0.02)" in err
    assert "on the same " in err and "give --force to publish it anyway" in err
    assert aws.keys("models/inspection/2/") == []
    assert _publish(aws, fitted.poor, labelled, "--margin", "1") == 0
    assert "gate passed" in capsys.readouterr().out
    assert _publish(aws, fitted.poor, labelled, "--force") == 0
    assert "gate overridden with --force" in capsys.readouterr().out
    assert sorted(json.loads(aws.s3.get_object(Bucket=aws.bucket, Key="models/inspection/index.json")["Body"]
                             .read())["versions"]) == ["1", "2", "3"]


def test_the_gate_measures_the_current_version_on_the_candidates_images(aws: Aws, labelled: Path, fitted: Fitted,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The current version's package says what it scored on its own split; the gate re-scores it here."""
    assert _publish(aws, fitted.poor, labelled, "--name", "gated") == 0
    assert main(["deploy", "--bucket", aws.bucket, "--name", "gated", "--version", "1", *aws.args]) == 0
    registry = Registry(aws.s3, aws.bucket, "gated")
    index, etag = registry.read_index()
    assert index is not None
    index["versions"]["1"].update(auroc=1.0, f1=1.0)        # a flattering entry: not what the gate uses
    registry.write_index(index, etag)
    capsys.readouterr()
    assert _publish(aws, fitted.good, labelled, "--name", "gated") == 0
    assert "gate passed" in capsys.readouterr().out


def test_the_lambda_backend_judges_with_the_deployed_version_at_its_next_start(
        aws: Aws, labelled: Path, fitted: Fitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.endpoint)
    monkeypatch.setattr(model_store, "CACHE_DIR", tmp_path / "cache")
    pipeline_aws.reset()
    image = next((labelled / "anomaly").iterdir()).read_bytes()
    try:
        for model, version in ((fitted.poor, "1"), (fitted.good, "2")):
            assert _publish(aws, model, labelled, "--force") == 0
            assert main(["deploy", "--bucket", aws.bucket, "--version", version, *aws.args]) == 0
            backend = ServerlessDetectorBackend(bucket=aws.bucket, model_name="inspection", start_timeout_seconds=60)
            state = backend.start(run_token="t")
            result = backend.pinned(state).detect(image, content_type="image/jpeg")
            assert state.version == version
            assert result["IsAnomalous"] == DetectorModel.load(model).detect(image)["IsAnomalous"]
    finally:
        pipeline_aws.reset()


def test_a_damaged_current_version_stops_the_gate_unless_forced(aws: Aws, labelled: Path, fitted: Fitted,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert _publish(aws, fitted.good, labelled) == 0
    assert main(["deploy", "--bucket", aws.bucket, "--version", "1", *aws.args]) == 0
    aws.s3.put_object(Bucket=aws.bucket, Key="models/inspection/1/model.npz", Body=b"damaged")
    capsys.readouterr()
    assert _publish(aws, fitted.good, labelled) == 1
    assert "cannot gate against current version 1: s3://" in capsys.readouterr().err
    assert _publish(aws, fitted.good, labelled, "--force") == 0
    assert "gate skipped with --force: current version 1 cannot be evaluated" in capsys.readouterr().out


class _RacingIndex:
    """An S3 client under which someone else changes the index just before this command writes it."""

    def __init__(self, aws: Aws) -> None:
        self._aws, self.raced = aws, False

    def __getattr__(self, name: str) -> object:
        return getattr(self._aws.s3, name)

    def put_object(self, **kwargs: object) -> object:
        if str(kwargs["Key"]).endswith("index.json") and not self.raced:
            self.raced = True
            other = Registry(self._aws.s3, self._aws.bucket, "inspection")
            other.update(lambda index: {**(index or {}), "candidate": "1"})
        return self._aws.s3.put_object(**kwargs)


def test_an_index_changed_meanwhile_is_read_again_and_both_changes_kept(aws: Aws, labelled: Path,
                                                                        fitted: Fitted) -> None:
    registry = Registry(aws.s3, aws.bucket, "inspection")
    publishing.publish(registry, _candidate(labelled, fitted.good))
    racing = _RacingIndex(aws)
    published = publishing.publish(Registry(racing, aws.bucket, "inspection"), _candidate(labelled, fitted.good))
    index, _ = registry.read_index()
    assert racing.raced and index is not None
    assert (published.version, sorted(index["versions"]), index["candidate"]) == ("2", ["1", "2"], "1")
