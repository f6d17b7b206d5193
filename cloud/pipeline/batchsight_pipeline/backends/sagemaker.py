"""The ``sagemaker`` backend: a real-time SageMaker endpoint that exists only while hosted.

start = CreateEndpoint from a configured EndpointConfig, status = DescribeEndpoint,
stop = DeleteEndpoint, detect = InvokeEndpoint. The endpoint config (model, instance type,
count) is deployed with the stack; only the endpoint, which is what bills, comes and goes.

Environment (read by ``from_env``):
    SAGEMAKER_ENDPOINT_NAME          endpoint to create and delete (required)
    SAGEMAKER_ENDPOINT_CONFIG_NAME   existing endpoint config to create it from (required)
"""
from __future__ import annotations

import json
import re
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
from batchsight_pipeline.backends.responses import error_code, error_message, normalise_result, unit_interval
from batchsight_pipeline.environment import SettingsError, required

__all__ = ["MAX_PAYLOAD_BYTES", "ModelBusy", "SageMakerBackend", "UnexpectedModelResponse", "map_response"]

# InvokeEndpoint's request Body limit (the API shape's max: 6 MiB).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
CONTENT_TYPES = ("image/jpeg", "image/png")
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")

_STATUS = {
    "Creating": STARTING,
    "Updating": STARTING,
    "SystemUpdating": STARTING,
    "RollingBack": STARTING,  # a failed update rolling back: still serving, transient
    "InService": HOSTED,
    "Failed": FAILED,
    "OutOfService": FAILED,
    "UpdateRollbackFailed": FAILED,
    "Deleting": STOPPED,
}
_ANOMALOUS_LABELS = {"anomalous", "anomaly", "abnormal", "defect", "defective", "true", "1"}
_NORMAL_LABELS = {"normal", "good", "ok", "false", "0"}


class SageMakerBackend(ModelBackend):
    name = "sagemaker"

    def __init__(self, *, endpoint_name: str, endpoint_config_name: str, sagemaker: Any = None,
                 runtime: Any = None, start_timeout_seconds: float) -> None:
        super().__init__(start_timeout_seconds=start_timeout_seconds)
        for variable, value in (("SAGEMAKER_ENDPOINT_NAME", endpoint_name),
                                ("SAGEMAKER_ENDPOINT_CONFIG_NAME", endpoint_config_name)):
            if not _NAME.match(value):
                raise SettingsError(f"{variable}={value!r} is not a valid SageMaker name "
                                    "(letters, digits and hyphens, at most 63)")
        self.endpoint_name = endpoint_name
        self.endpoint_config_name = endpoint_config_name
        self._sagemaker = sagemaker
        self._runtime = runtime

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> SageMakerBackend:
        return cls(endpoint_name=required("SAGEMAKER_ENDPOINT_NAME"),
                   endpoint_config_name=required("SAGEMAKER_ENDPOINT_CONFIG_NAME"),
                   start_timeout_seconds=start_timeout_seconds)

    @property
    def sagemaker(self) -> Any:
        if self._sagemaker is None:
            from batchsight_pipeline.aws import client

            self._sagemaker = client("sagemaker")
        return self._sagemaker

    @property
    def runtime(self) -> Any:
        if self._runtime is None:
            from batchsight_pipeline.aws import client

            self._runtime = client("sagemaker-runtime")
        return self._runtime

    @property
    def model_id(self) -> str:
        return self.endpoint_name

    def _start(self, run_token: str) -> str:
        try:
            self.sagemaker.create_endpoint(EndpointName=self.endpoint_name,
                                           EndpointConfigName=self.endpoint_config_name)
            return STARTING
        except ClientError as exc:
            if not (error_code(exc) == "ValidationException"
                    and "already existing endpoint" in error_message(exc).lower()):
                raise
        raw, reason = self._raw_status()
        status = _STATUS.get(raw, FAILED) if raw else STOPPED
        if status in (STARTING, HOSTED):
            return status  # an earlier attempt of this start (or a live endpoint) is enough
        if status == STOPPED:
            raise ModelBusy(f"endpoint {self.endpoint_name} is {raw or 'gone'} after a previous stop; "
                            "start it again once the deletion has finished")
        raise RuntimeError(f"endpoint {self.endpoint_name} already exists in status {raw}"
                           + (f" ({reason})" if reason else "")
                           + "; stop deletes it, then start again")

    def _raw_status(self) -> tuple[str, str]:
        """(EndpointStatus, FailureReason); ("", "") when there is no endpoint."""
        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=self.endpoint_name)
        except ClientError as exc:
            if _not_found(exc):
                return "", ""
            raise
        return str(endpoint.get("EndpointStatus", "")), str(endpoint.get("FailureReason", ""))

    def _describe(self) -> tuple[str, str]:
        raw, reason = self._raw_status()
        if not raw:
            return STOPPED, "no endpoint"
        status = _STATUS.get(raw)
        if status is None:
            return FAILED, f"endpoint {self.endpoint_name} has an unknown status {raw!r}"
        if status == FAILED:
            return FAILED, reason or f"endpoint is {raw}"
        if status == STOPPED:
            return STOPPED, "endpoint is being deleted"
        return status, ""

    def _stop(self) -> None:
        try:
            self.sagemaker.delete_endpoint(EndpointName=self.endpoint_name)
            return
        except ClientError as exc:
            if _not_found(exc):
                return
            if error_code(exc) != "ValidationException":
                raise
            refusal = error_message(exc)
        # SageMaker refuses to delete an endpoint that is still Creating or Updating.
        raw, _ = self._raw_status()
        if raw not in ("", "Deleting"):
            raise ModelBusy(f"endpoint {self.endpoint_name} is {raw} and cannot be deleted yet "
                            f"({refusal}); retry the stop")

    def scale(self, units: int) -> int:
        """Instances of the endpoint's first variant (UpdateEndpointWeightsAndCapacities); the units
        in effect afterwards. The endpoint goes on serving while it is Updating; an update asked
        for meanwhile (or refused) leaves the count as it is, for the next check to ask again."""
        units = max(1, min(units, self.max_units))
        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=self.endpoint_name)
        except ClientError:
            return 1
        variants = endpoint.get("ProductionVariants") or [{}]
        variant = variants[0]
        current = int(variant.get("DesiredInstanceCount") or variant.get("CurrentInstanceCount") or 1)
        if units == current or endpoint.get("EndpointStatus") != "InService" or "VariantName" not in variant:
            return current
        try:
            self.sagemaker.update_endpoint_weights_and_capacities(
                EndpointName=self.endpoint_name,
                DesiredWeightsAndCapacities=[{"VariantName": variant["VariantName"], "DesiredInstanceCount": units}])
        except ClientError as exc:
            if error_code(exc) not in ("ValidationException", "ThrottlingException"):
                raise
            return current
        return units

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        if content_type not in CONTENT_TYPES:
            raise ModelRejectedImage(f"content type {content_type!r} is not one of {CONTENT_TYPES}")
        if len(image) > MAX_PAYLOAD_BYTES:
            raise ModelRejectedImage(f"image of {len(image)} bytes exceeds the InvokeEndpoint "
                                     f"limit of {MAX_PAYLOAD_BYTES} bytes (6 MiB)")
        try:
            response = self.runtime.invoke_endpoint(EndpointName=self.endpoint_name, Body=image,
                                                    ContentType=content_type, Accept="application/json")
        except ClientError as exc:
            _reject_if_about_payload(exc)
            raise
        body = response["Body"]
        data = body.read() if hasattr(body, "read") else body
        return map_response(data, content_type=str(response.get("ContentType", "")))


def map_response(body: bytes | str, *, content_type: str = "application/json") -> dict[str, Any]:
    """Map an InvokeEndpoint answer into the DetectAnomalyResult shape.

    Accepted, and nothing else:
      (a) a DetectAnomalyResult object, bare or under "DetectAnomalyResult" (the Lookout for
          Vision team's SageMaker algorithm answers so); an AnomalyMask in it is base64 text
          and comes back as PNG bytes under "_mask_png";
      (b) a generic anomaly-model answer: a verdict under "is_anomalous" or "pred_label"
          (boolean, 0/1, or a label such as "anomalous"/"normal") and a number in [0, 1]
          under "confidence" (confidence in the verdict) or "pred_score"/"score" (probability
          of an anomaly; Confidence = score for an anomalous verdict, 1 - score otherwise).
    """
    try:
        document = json.loads(body)
    except (ValueError, TypeError) as exc:
        preview = body[:120] if isinstance(body, (bytes, str)) else type(body).__name__
        raise UnexpectedModelResponse(f"endpoint answered {content_type or 'no content type'} "
                                      f"that is not JSON: {preview!r}") from exc
    if not isinstance(document, dict):
        raise UnexpectedModelResponse(f"endpoint answered a JSON {type(document).__name__}, "
                                      "expected an object")
    if "DetectAnomalyResult" in document:
        return normalise_result(document["DetectAnomalyResult"])
    if "IsAnomalous" in document:
        return normalise_result(document)
    label_key = next((k for k in ("is_anomalous", "pred_label") if k in document), None)
    score_key = next((k for k in ("confidence", "pred_score", "score") if k in document), None)
    if label_key is None or score_key is None:
        raise UnexpectedModelResponse(
            "endpoint answer has neither a DetectAnomalyResult (IsAnomalous, Confidence) nor a "
            "generic verdict (is_anomalous|pred_label with confidence|pred_score|score); "
            f"keys were {sorted(document)[:20]}")
    anomalous = _verdict(document[label_key], label_key)
    value = unit_interval(document[score_key], score_key)
    confidence = value if score_key == "confidence" or anomalous else 1.0 - value
    return {"Source": {"Type": "direct"}, "IsAnomalous": anomalous, "Confidence": confidence}


def _verdict(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        label = value.strip().lower()
        if label in _ANOMALOUS_LABELS:
            return True
        if label in _NORMAL_LABELS:
            return False
    raise UnexpectedModelResponse(f"{key}={value!r} is not a verdict (boolean, 0/1, "
                                  f"or one of {sorted(_ANOMALOUS_LABELS | _NORMAL_LABELS)})")


def _reject_if_about_payload(exc: ClientError) -> None:
    """Raise ModelRejectedImage when the error blames this image; return to let it raise.

    ModelError is the container's own error: its 4xx answers (bad image, wrong size) are
    final, its 5xx answers may be transient and are retried (SQS redrive dead-letters a
    repeat offender). ValidationError is final unless it is about the endpoint itself
    ("Endpoint X of account Y not found"), which must never turn images into poison.
    """
    code, message = error_code(exc), error_message(exc)
    if code == "ModelError":
        original = exc.response.get("OriginalStatusCode")
        try:
            original = int(original) if original is not None else None
        except (TypeError, ValueError):
            original = None
        if original is None or 400 <= original < 500:
            detail = exc.response.get("OriginalMessage") or message
            raise ModelRejectedImage(f"model rejected the image (status {original}): {detail}") from exc
    elif code == "ValidationError" and "endpoint" not in message.lower():
        raise ModelRejectedImage(f"SageMaker rejected the request: {message}") from exc


def _not_found(exc: ClientError) -> bool:
    return error_code(exc) == "ValidationException" and "could not find endpoint" in error_message(exc).lower()
