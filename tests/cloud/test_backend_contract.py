"""One contract every model backend passes: local, sagemaker and lookoutvision.

The state machine relies on these behaviours and nothing else: start answers STARTING or
HOSTED, polling reaches HOSTED, stop is idempotent and leaves STOPPED, detect answers a
JSON-safe DetectAnomalyResult, and a start that stays STARTING too long becomes TIMED_OUT.
The remote services are stood in for by the harnesses of tests/cloud/backend_harnesses.py.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, UTC
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from batchsight_pipeline.backends import backend_from_settings
from batchsight_pipeline.backends.base import HOSTED, STARTING, STOPPED, TIMED_OUT, ModelBackend, ModelState
from batchsight_pipeline.settings import Settings, SettingsError
from tests.cloud.backend_harnesses import (
    HAS_LOOKOUT_MODEL,
    MODELS,
    REGION,
    TIMEOUT,
    Harness,
    LocalHarness,
    LookoutVisionHarness,
    SageMakerHarness,
    SageMakerServerlessHarness,
    ServerlessHarness,
)
from tests.cloud.moto_stack import unique

MASK_KEY = "_mask_png"  # the contract's literal, not the constant of the code under test


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
                 "AWS_ENDPOINT_URL_LOOKOUTVISION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(scope="module")
def training_images() -> list[bytes]:
    from batchsight_tools.synth import generate_training_set

    return generate_training_set(20, size=96)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, training_images: list[bytes]) -> Path:
    from batchsight_detector import fit

    path = tmp_path_factory.mktemp("contract-model") / "detector.npz"
    fit(training_images, working_size=64).save(path)
    return path


@pytest.fixture(scope="module")
def lookout_client_factory() -> Callable[[], Any]:
    """Fresh clients (a fake registers handlers on each) from one session on the archived model.

    One botocore session caches the loaded service model, so later clients are cheap; the
    backend's own client building is covered in test_backend_lookoutvision.py.
    """
    import botocore.session
    from botocore.loaders import create_loader

    session = botocore.session.get_session()
    session.register_component("data_loader", create_loader(str(MODELS)))
    return lambda: session.create_client("lookoutvision", region_name=REGION, aws_access_key_id="testing",
                                         aws_secret_access_key="testing")


@pytest.fixture(params=["local", "sagemaker", "sagemaker-serverless", "lookoutvision", "lambda"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "local":
        yield LocalHarness(request.getfixturevalue("tiny_model"), tmp_path)
    elif request.param == "lambda":
        moto = request.getfixturevalue("moto")
        yield ServerlessHarness(request.getfixturevalue("tiny_model"), moto.client("s3"), unique("models"))
    elif request.param in ("sagemaker", "sagemaker-serverless"):
        from moto import mock_aws

        with mock_aws():
            yield SageMakerHarness() if request.param == "sagemaker" else SageMakerServerlessHarness()
    else:
        if not HAS_LOOKOUT_MODEL:
            pytest.skip(f"archived Lookout for Vision service model not found at {MODELS}")
        yield LookoutVisionHarness(request.getfixturevalue("lookout_client_factory"))


def host(backend: ModelBackend, run_token: str = "run-1", *, limit: float = 5.0) -> ModelState:
    state = backend.start(run_token=run_token)
    deadline = time.monotonic() + limit
    while state.status == STARTING and time.monotonic() < deadline:
        time.sleep(0.02)
        state = backend.status(state)
    return state


# --- the contract ------------------------------------------------------------------------------

def test_start_returns_starting_or_hosted(harness: Harness) -> None:
    backend = harness.backend()
    state = backend.start(run_token="run-1")
    assert state.status in (STARTING, HOSTED)
    assert state.backend == harness.name and state.model_id == backend.model_id
    assert state.run_token == "run-1" and state.started_at
    json.dumps(state.to_dict())
    host(backend)
    backend.stop()


def test_stop_while_starting_stops_or_asks_for_a_retry(harness: Harness) -> None:
    """Some services refuse to stop a model that is still starting (Lookout for Vision,
    SageMaker while Creating): stop then raises ModelBusy for the state machine to retry,
    and must never report STOPPED while the model can still come up and bill."""
    from batchsight_pipeline.backends.sagemaker import ModelBusy

    backend = harness.stalled_backend()
    state = backend.start(run_token="run-1")
    try:
        stopped = backend.stop()
    except ModelBusy:
        assert backend.status(state).status == STARTING
    else:  # down, or (an endpoint that scales to zero) left to come up without billing idle
        assert stopped.status == STOPPED
        assert backend.status(state).status == STOPPED or not backend.idle_cost


def test_status_reaches_hosted(harness: Harness) -> None:
    backend = harness.backend()
    state = host(backend)
    assert state.status == HOSTED, state
    assert backend.status(state).status == HOSTED
    backend.stop()


def test_start_again_within_the_run_keeps_it_hosted(harness: Harness) -> None:
    backend = harness.backend()
    host(backend)
    assert backend.start(run_token="run-1").status in (STARTING, HOSTED)
    assert host(backend).status == HOSTED
    backend.stop()


def test_stop_makes_status_stopped(harness: Harness) -> None:
    backend = harness.backend()
    state = host(backend)
    assert backend.stop().status == STOPPED
    # what bills while idle must be down after a stop; a serverless detector bills per image
    # and stays ready to judge (nothing was hosted, so nothing is left up)
    assert backend.status(state).status == (STOPPED if backend.idle_cost else HOSTED)


def test_stop_twice_and_stop_before_start_are_fine(harness: Harness) -> None:
    backend = harness.backend()
    assert backend.stop().status == STOPPED  # nothing hosted yet
    host(backend)
    assert backend.stop().status == STOPPED
    assert backend.stop().status == STOPPED
    after = backend.status(ModelState(backend=harness.name, model_id=backend.model_id, status=STOPPED))
    assert after.status == (STOPPED if backend.idle_cost else HOSTED)


def test_detect_returns_a_json_safe_result(harness: Harness, training_images: list[bytes]) -> None:
    backend = harness.backend()
    assert host(backend).status == HOSTED
    for image in training_images[:2]:
        result = backend.detect(image, content_type="image/jpeg")
        mask = result.pop(MASK_KEY, None)
        assert mask is None or (isinstance(mask, bytes) and mask.startswith(b"\x89PNG\r\n\x1a\n"))
        assert not [k for k in result if k.startswith("_")], "only _mask_png may be private"
        assert json.loads(json.dumps(result)) == result
        assert isinstance(result["Source"]["Type"], str)
        assert isinstance(result["IsAnomalous"], bool)
        assert isinstance(result["Confidence"], float) and 0.0 <= result["Confidence"] <= 1.0
    backend.stop()


def test_a_start_that_lasts_too_long_times_out(harness: Harness) -> None:
    backend = harness.stalled_backend()
    state = backend.start(run_token="run-1")
    assert state.status == STARTING
    assert backend.status(state).status == STARTING  # within the timeout: keep waiting
    long_ago = (datetime.now(UTC) - timedelta(seconds=TIMEOUT + 5)).isoformat()
    late = ModelState(**{**state.to_dict(), "started_at": long_ago})
    timed_out = backend.status(late)
    assert timed_out.status == TIMED_OUT and str(TIMEOUT) in timed_out.reason
    assert timed_out.started_at == long_ago and timed_out.run_token == "run-1"


def test_lookoutvision_starts_with_a_fresh_token_per_run(lookout_client_factory: Callable[[], Any]) -> None:
    if not HAS_LOOKOUT_MODEL:
        pytest.skip(f"archived Lookout for Vision service model not found at {MODELS}")
    harness = LookoutVisionHarness(lookout_client_factory)
    backend = harness.backend()
    for run in ("run-1", "run-2"):
        host(backend, run)
        backend.stop()
        backend.status(ModelState(backend="lookoutvision", model_id=backend.model_id, status=STOPPED))
    assert harness.service is not None and len(set(harness.service.tokens)) == 2


# --- the factory -------------------------------------------------------------------------------

def settings(backend: str) -> Settings:
    """The factory reads only these two settings (the rest of Settings belongs to other code)."""
    return cast(Settings, SimpleNamespace(backend=backend, start_timeout_seconds=1200))


def test_factory_builds_each_backend(monkeypatch: pytest.MonkeyPatch, tiny_model: Path, tmp_path: Path) -> None:
    from batchsight_tools.localcloud.local_backend import LocalBackend
    from batchsight_pipeline.backends.lookoutvision import LookoutVisionBackend
    from batchsight_pipeline.backends.sagemaker import SageMakerBackend

    monkeypatch.setenv("LOCAL_MODEL_PATH", str(tiny_model))
    monkeypatch.setenv("LOCAL_MODEL_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_NAME", "batchsight-model")
    monkeypatch.setenv("SAGEMAKER_ENDPOINT_CONFIG_NAME", "batchsight-model-config")
    monkeypatch.setenv("LOOKOUTVISION_PROJECT", "circuit-boards")
    monkeypatch.setenv("LOOKOUTVISION_MODEL_VERSION", "3")
    for spec, kind in ((LocalBackend.PLUGIN, LocalBackend), ("sagemaker", SageMakerBackend),
                       ("lookoutvision", LookoutVisionBackend)):
        backend = backend_from_settings(settings(spec))
        assert isinstance(backend, kind) and backend.name == kind.name
        assert backend.start_timeout_seconds == 1200


def test_factory_lists_the_valid_backends_for_an_unknown_name() -> None:
    with pytest.raises(SettingsError, match="lookoutvision, sagemaker"):
        backend_from_settings(settings("rekognition"))
