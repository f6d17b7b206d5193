"""The ``lookoutvision`` backend: Amazon Lookout for Vision, kept for API compatibility.

The service ended support on 2025-10-31 and botocore dropped its client in 1.40.61, so the
client is built from the archived service model (``lookoutvision/2020-11-20/`` under the
folder named by LOOKOUTVISION_MODEL_PATH, or anywhere on AWS_DATA_PATH).

Environment (read by ``from_env``):
    LOOKOUTVISION_PROJECT            project name (required)
    LOOKOUTVISION_MODEL_VERSION      model version, e.g. "3" (required)
    LOOKOUTVISION_INFERENCE_UNITS    MinInferenceUnits for StartModel (default 1)
    LOOKOUTVISION_MODEL_PATH         folder holding lookoutvision/2020-11-20/ (optional)

DetectAnomalies answers a DetectAnomalyResult already; ``responses.normalise_result``
checks it and moves its AnomalyMask to the ``MASK_KEY`` convention, as for every backend.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from batchsight_pipeline.backends.base import (
    FAILED,
    HOSTED,
    STARTING,
    STOPPED,
    ModelBackend,
    ModelBusy,
    ModelRejectedImage,
    UnexpectedModelResponse,
)
from batchsight_pipeline.backends.responses import error_code, error_message, normalise_result
from batchsight_pipeline.aws import DETECT_CONFIG
from batchsight_pipeline.environment import SettingsError, number, optional, required

SERVICE = "lookoutvision"
API_VERSION = "2020-11-20"
CONTENT_TYPES = ("image/jpeg", "image/png")
# ClientToken shape in the service model: 1..64 characters of [a-zA-Z0-9-].
CLIENT_TOKEN_MAX = 64
_PROJECT = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_\-]{0,254}$")
_VERSION = re.compile(r"^([1-9][0-9]{0,9}|latest)$")

# DescribeModel -> ModelDescription.Status, mapped onto the backend contract.
_STATUS = {
    "STARTING_HOSTING": STARTING,
    "SYSTEM_UPDATING": STARTING,  # hosted, being patched by the service: transient, still billed
    "HOSTED": HOSTED,
    "HOSTING_FAILED": FAILED,
    "TRAINED": STOPPED,
    "STOPPING_HOSTING": STOPPED,  # no longer usable, but billed until it reaches TRAINED
}
# Statuses in which inference units may still be running (and billed).
_BILLED = {"STARTING_HOSTING", "HOSTED", "SYSTEM_UPDATING"}


def client_token(run_token: str, *, project: str, version: str) -> str:
    """A StartModel ClientToken that is fresh per run and stable within one run.

    A token stays active for 8 hours, so a constant token would turn later starts into
    no-ops; deriving it from the run keeps retries of one start idempotent. Hex digits fit
    the [a-zA-Z0-9-]{1,64} constraint of the service model.
    """
    digest = hashlib.sha256(f"{project}/{version}/{run_token}".encode()).hexdigest()
    return digest[:CLIENT_TOKEN_MAX]


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def build_client(model_path: str | os.PathLike[str] | None = None) -> Any:
    """A new Lookout for Vision client built from the archived service model.

    ``model_path`` is the folder that contains ``lookoutvision/2020-11-20/``; it goes first
    on the botocore Loader's search path, in front of AWS_DATA_PATH (which botocore honours
    on its own, so without ``model_path`` AWS_DATA_PATH alone must lead to the model).
    Its calls have the model runtime's bounded timeouts and retries (``aws.DETECT_CONFIG``),
    DetectAnomalies among them, so the drain knows how long one can take; the state machine
    retries a start or stop that fails.
    """
    import boto3
    import botocore.session
    from botocore.exceptions import UnknownServiceError
    from botocore.loaders import create_loader

    session = botocore.session.get_session()
    if model_path:
        folder = Path(model_path)
        if not (folder / SERVICE / API_VERSION).is_dir():
            raise SettingsError(f"LOOKOUTVISION_MODEL_PATH={str(model_path)!r} does not contain "
                                f"{SERVICE}/{API_VERSION}/ (the archived service model)")
        data_path = session.get_config_variable("data_path") or ""
        session.register_component("data_loader", create_loader(os.pathsep.join(
            [str(folder), *[p for p in data_path.split(os.pathsep) if p]])))
    try:
        return boto3.session.Session(botocore_session=session).client(SERVICE, config=DETECT_CONFIG)
    except UnknownServiceError as exc:
        raise SettingsError("this botocore has no Lookout for Vision client: set "
                            "LOOKOUTVISION_MODEL_PATH (or AWS_DATA_PATH) to the folder holding "
                            f"{SERVICE}/{API_VERSION}/service-2.json.gz") from exc


def make_client(model_path: str | os.PathLike[str] | None = None) -> Any:
    """``build_client``, once per process and path (like ``batchsight_pipeline.aws.client``)."""
    key = str(model_path or "")
    with _clients_lock:
        if key not in _clients:
            _clients[key] = build_client(model_path)
        return _clients[key]


class LookoutVisionBackend(ModelBackend):
    name = "lookoutvision"
    max_units = 1  # a running model's inference units are fixed at StartModel (InferenceUnits)

    def __init__(self, *, project: str, model_version: str, inference_units: int = 1,
                 client: Any = None, model_path: str | None = None,
                 start_timeout_seconds: float) -> None:
        super().__init__(start_timeout_seconds=start_timeout_seconds)
        if not _PROJECT.match(project):
            raise SettingsError(f"LOOKOUTVISION_PROJECT={project!r} is not a valid project name")
        if not _VERSION.match(model_version):
            raise SettingsError(f"LOOKOUTVISION_MODEL_VERSION={model_version!r} must be a "
                                "positive integer or 'latest'")
        if inference_units < 1:
            raise SettingsError(f"LOOKOUTVISION_INFERENCE_UNITS={inference_units} must be >= 1")
        self.project = project
        self._model_version = model_version
        self.inference_units = inference_units
        self._client = client
        self._model_path = model_path

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> LookoutVisionBackend:
        units = number("LOOKOUTVISION_INFERENCE_UNITS", 1, minimum=1)
        if units != int(units):
            raise SettingsError(f"LOOKOUTVISION_INFERENCE_UNITS={units} must be a whole number")
        return cls(project=required("LOOKOUTVISION_PROJECT"),
                   model_version=required("LOOKOUTVISION_MODEL_VERSION"),
                   inference_units=int(units),
                   model_path=optional("LOOKOUTVISION_MODEL_PATH") or None,
                   start_timeout_seconds=start_timeout_seconds)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self._model_path)
        return self._client

    @property
    def model_id(self) -> str:
        return f"{self.project}:{self.model_version}"

    @property
    def model_version(self) -> str:
        """Lookout for Vision's own model version (LOOKOUTVISION_MODEL_VERSION)."""
        return self._model_version

    def _ids(self) -> dict[str, str]:
        return {"ProjectName": self.project, "ModelVersion": self.model_version}

    def _start(self, run_token: str) -> str:
        token = client_token(run_token, project=self.project, version=self.model_version)
        try:
            response = self.client.start_model(**self._ids(), MinInferenceUnits=self.inference_units,
                                               ClientToken=token)
            raw, reason = response.get("Status", ""), ""
        except ClientError as exc:
            if error_code(exc) != "ConflictException":
                raise
            # Already hosted or in transition (another token): look before deciding.
            raw, reason = self._raw_status()
        status = _STATUS.get(raw, FAILED)
        if status in (STARTING, HOSTED):
            return status
        if raw == "STOPPING_HOSTING":
            raise ModelBusy(f"model {self.model_id} is still stopping; start it again once TRAINED")
        raise RuntimeError(f"model {self.model_id} cannot be started: status {raw or 'unknown'}"
                           + (f" ({reason})" if reason else ""))

    def _raw_status(self) -> tuple[str, str]:
        model = self.client.describe_model(**self._ids())["ModelDescription"]
        return str(model.get("Status", "")), str(model.get("StatusMessage", ""))

    def _describe(self) -> tuple[str, str]:
        try:
            raw, message = self._raw_status()
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return FAILED, f"model {self.model_id} does not exist: {error_message(exc)}"
            raise
        status = _STATUS.get(raw)
        if status is None:
            return FAILED, (f"model {self.model_id} is {raw or 'in no status'}, which cannot be "
                            f"hosted" + (f": {message}" if message else ""))
        if raw == "STOPPING_HOSTING":
            return STOPPED, "stopping (inference units are billed until the model is TRAINED)"
        if status == FAILED:
            return FAILED, message or "hosting failed"
        if status == STOPPED:
            return STOPPED, "not hosted (TRAINED)"
        return status, ""

    def _stop(self) -> None:
        try:
            self.client.stop_model(**self._ids())
            return
        except ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                return  # no such model: nothing can be hosted
            if code != "ConflictException":
                raise
            conflict = error_message(exc)
        raw, _ = self._raw_status()
        if raw in _BILLED:
            # e.g. still STARTING_HOSTING: it cannot be stopped yet, and must not be left running.
            raise ModelBusy(f"model {self.model_id} is {raw} and cannot be stopped yet "
                            f"({conflict}); retry the stop")

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        if content_type not in CONTENT_TYPES:
            raise ModelRejectedImage(f"content type {content_type!r} is not one of {CONTENT_TYPES}")
        try:
            response = self.client.detect_anomalies(**self._ids(), Body=image, ContentType=content_type)
        except ClientError as exc:
            if error_code(exc) == "ValidationException" and not _about_hosting(error_message(exc)):
                raise ModelRejectedImage(f"Lookout for Vision rejected the image: {error_message(exc)}") from exc
            raise
        if "DetectAnomalyResult" not in response:
            raise UnexpectedModelResponse("DetectAnomalies answered without a DetectAnomalyResult")
        return normalise_result(response["DetectAnomalyResult"])


def _about_hosting(message: str) -> bool:
    """A ValidationException that blames the model's state, not the image: retry, never poison."""
    lowered = message.lower()
    return any(word in lowered for word in ("not hosted", "not running", "not started", "not found",
                                            "hosting", "stopped"))
