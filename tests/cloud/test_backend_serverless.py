"""The ``lambda`` backend: the model's current version from the index, its package checked,
every image of an execution judged with the version its start resolved.

S3 is a moto server over HTTP; the packages are laid out as publish writes them.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from batchsight_pipeline import model_store
from batchsight_pipeline.backends.base import HOSTED, STOPPED
from batchsight_pipeline.backends.serverless import ServerlessDetectorBackend
from tests.cloud import model_packages
from tests.cloud.moto_stack import Moto, Stack, unique

NAME = "casting"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two models that judge differently: fitted on different generated parts."""
    from batchsight_detector import fit
    from batchsight_tools.synth import generate_training_set

    folder = tmp_path_factory.mktemp("serverless-models")
    paths = []
    for seed in (1, 2):
        path = folder / f"model-{seed}.npz"
        fit(generate_training_set(12, size=64, seed=seed), working_size=32).save(path)
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture
def bucket(moto: Moto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(model_store, "CACHE_DIR", tmp_path / "cache")  # a cold function's /tmp
    name = unique("models")
    moto.client("s3").create_bucket(Bucket=name)
    return name


def backend(bucket: str) -> ServerlessDetectorBackend:
    return ServerlessDetectorBackend(bucket=bucket, model_name=NAME, start_timeout_seconds=60)


def test_start_resolves_the_current_version_and_is_hosted_at_once(moto: Moto, bucket: str,
                                                                   models: tuple[Path, Path]) -> None:
    model_packages.write(moto.client("s3"), bucket, NAME, "1", models[0])
    state = backend(bucket).start(run_token="run-1")
    assert (state.status, state.version, state.model_id) == (HOSTED, "1", NAME)
    assert backend(bucket).stop().status == STOPPED  # nothing to release
    assert not backend(bucket).idle_cost, "the reaper has nothing to stop"


def test_a_new_version_is_used_from_the_next_start_and_a_started_execution_keeps_its_own(
        moto: Moto, bucket: str, models: tuple[Path, Path]) -> None:
    from batchsight_tools.synth import generate_training_set

    s3 = moto.client("s3")
    model_packages.write(s3, bucket, NAME, "1", models[0])
    first = backend(bucket).start(run_token="run-1")
    model_packages.write(s3, bucket, NAME, "2", models[1])  # deployed while run-1 drains
    image = generate_training_set(1, size=64, seed=9)[0]
    pinned = backend(bucket).pinned(first)
    assert pinned.model_version == "1"
    assert pinned.detect(image, content_type="image/png") == backend(bucket).pinned(first).detect(
        image, content_type="image/png")
    assert backend(bucket).start(run_token="run-2").version == "2"


def test_a_model_file_that_does_not_match_its_checksum_is_refused(moto: Moto, bucket: str,
                                                                   models: tuple[Path, Path]) -> None:
    s3 = moto.client("s3")
    model_packages.write(s3, bucket, NAME, "1", models[0])
    s3.put_object(Bucket=bucket, Key=f"models/{NAME}/1/model.npz", Body=models[1].read_bytes())  # altered
    with pytest.raises(model_store.ModelPackageError, match="does not match the SHA-256"):
        backend(bucket).start(run_token="run-1")


def test_a_model_without_index_or_current_version_says_what_to_do(moto: Moto, bucket: str,
                                                                   models: tuple[Path, Path]) -> None:
    with pytest.raises(model_store.ModelPackageError, match="batchsight model publish"):
        backend(bucket).start(run_token="run-1")
    model_packages.write(moto.client("s3"), bucket, NAME, "1", models[0], current=False)
    with pytest.raises(model_store.ModelPackageError, match="batchsight model deploy"):
        backend(bucket).start(run_token="run-1")


def test_the_file_is_fetched_once_per_warm_function(moto: Moto, bucket: str, models: tuple[Path, Path]) -> None:
    s3 = moto.client("s3")
    model_packages.write(s3, bucket, NAME, "1", models[0])
    first = model_store.fetch(bucket, NAME, "1")
    stamp = first.stat().st_mtime_ns
    assert model_store.fetch(bucket, NAME, "1") == first and first.stat().st_mtime_ns == stamp
    assert json.loads(s3.get_object(Bucket=bucket, Key=f"models/{NAME}/index.json")["Body"].read())["current"] == "1"


def test_model_control_publishes_no_hosting_metrics_when_nothing_is_hosted(
        stack: Stack, bucket: str, models: tuple[Path, Path], lambda_context: Any,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """A start is a read of the index and nothing bills between batches: ModelStarts, ModelStops and
    the hosted minutes would be custom metrics billed for nothing (the execution's own time says it)."""
    from batchsight_pipeline import lock
    from batchsight_tools.stack import function

    for name in ("POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_BACKEND", "lambda")
    monkeypatch.setenv("MODEL_BUCKET", bucket)
    monkeypatch.setenv("MODEL_NAME", NAME)
    model_packages.write(stack.s3, bucket, NAME, "1", models[0])
    model_control = function("model_control")
    lock.acquire("arn:x:exec", time.time())  # a stop renews the execution's lock first
    capsys.readouterr()
    state = model_control.handler({"action": "start", "execution": "arn:x:exec"}, lambda_context)
    model_control.handler({"action": "stop", "execution": "arn:x:exec", "model": state}, lambda_context)
    assert '"_aws"' not in capsys.readouterr().out, "no EMF document"
