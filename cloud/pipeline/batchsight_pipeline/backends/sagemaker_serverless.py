"""The ``sagemaker-serverless`` backend: a SageMaker Serverless Inference endpoint.

For models too big for the drain function (the ``lambda`` backend's 10 GB and 250 MB package
limits): an endpoint whose EndpointConfig has a ServerlessConfig (memory 1-6 GB, max
concurrency) scales to zero by itself and bills per GB-second of inference and per GB of data
processed, nothing while idle. So the endpoint is created once and left in place: ``start``
creates it when it is missing (minutes, the first time only) and ``stop`` releases nothing,
since deleting it would only make the next batch wait for a new endpoint. Its cold start (a
request after idling waits for a container) falls on the first images of a batch, inside the
drain's InvokeEndpoint timeout; the cost model counts it.

The EndpointConfig, with its ServerlessConfig, is made by ``batchsight model package
--sagemaker --serverless``; everything else is the ``sagemaker`` backend's.

Scaling (overload control's units) raises the endpoint's concurrency, the one thing a serverless
endpoint lets us raise: unit ``n`` is an EndpointConfig ``{configured}-u{n}``, the configured one
with MaxConcurrency times ``n`` (SageMaker allows 200 at most per endpoint), applied with
UpdateEndpoint. EndpointConfigs are immutable, so a name says all of its content: one made by an
earlier scaling is reused, and a new model (a new configured name) gets new ones. Unit 1 is the
configured config itself. An update takes minutes, during which the endpoint serves as before.
"""
from __future__ import annotations

import logging
import re
from typing import Any

from botocore.exceptions import ClientError

from batchsight_pipeline.backends.responses import error_code, error_message
from batchsight_pipeline.backends.sagemaker import SageMakerBackend

log = logging.getLogger(__name__)
MAX_CONCURRENCY = 200  # ServerlessConfig.MaxConcurrency's limit per endpoint (the service model's max)
NAME_LIMIT = 63  # EndpointConfigName
# ProductionVariant fields a serverless variant carries over to a scaled copy.
VARIANT_FIELDS = ("VariantName", "ModelName", "InitialVariantWeight", "ServerlessConfig")
BUSY = ("ValidationException", "ThrottlingException", "ResourceLimitExceeded")


class SageMakerServerlessBackend(SageMakerBackend):
    name = "sagemaker-serverless"
    idle_cost = False

    def _stop(self) -> None:
        """Nothing bills while the endpoint idles: keep it for the next batch."""

    def scale(self, units: int) -> int:
        """The units in effect afterwards: an endpoint that is missing or not InService, or that
        refuses the update (one in progress, a throttle, the account's concurrency quota), keeps
        its concurrency for the next check to ask again."""
        try:
            endpoint = self.sagemaker.describe_endpoint(EndpointName=self.endpoint_name)
        except ClientError:
            return 1
        current = self.units_of(str(endpoint.get("EndpointConfigName", "")))
        if endpoint.get("EndpointStatus") != "InService":
            return current
        try:
            base = self._serverless_variants(self.endpoint_config_name)
            if not base:
                return current
            wanted = max(1, min(units, self.max_units, _most_units(base)))
            if wanted == current:
                return current
            name = self._config_for(wanted, base)
            self.sagemaker.update_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=name)
        except ClientError as exc:
            if error_code(exc) not in BUSY:
                raise
            return current
        return wanted

    def config_name(self, units: int) -> str:
        """The EndpointConfig of ``units``: the configured one, or its copy named for the units."""
        if units <= 1:
            return self.endpoint_config_name
        suffix = f"-u{units}"
        return self.endpoint_config_name[:NAME_LIMIT - len(suffix)] + suffix

    def units_of(self, config_name: str) -> int:
        """The units an endpoint runs from its config's name (1: the configured one, or unknown)."""
        for units in range(2, MAX_CONCURRENCY + 1):
            if config_name == self.config_name(units):
                return units
        return 1

    def _serverless_variants(self, config_name: str) -> list[dict[str, Any]]:
        """The configured config's variants if each has a ServerlessConfig; else none (logged): a
        config without one has no concurrency to raise, and scaling must never fail the batch."""
        config = self.sagemaker.describe_endpoint_config(EndpointConfigName=config_name)
        variants = list(config.get("ProductionVariants", []))
        if not variants or not all(v.get("ServerlessConfig") for v in variants):
            log.warning("endpoint config %s has no ServerlessConfig: its concurrency is not scaled", config_name)
            return []
        return variants

    def _config_for(self, units: int, base: list[dict[str, Any]]) -> str:
        """Create (or reuse) the config of ``units``: each variant's MaxConcurrency times ``units``."""
        name = self.config_name(units)
        if units == 1:
            return name
        variants = []
        for variant in base:
            copy = {k: variant[k] for k in VARIANT_FIELDS if k in variant}
            serverless = dict(variant["ServerlessConfig"])
            serverless["MaxConcurrency"] = min(MAX_CONCURRENCY, int(serverless["MaxConcurrency"]) * units)
            copy["ServerlessConfig"] = serverless
            variants.append(copy)
        try:
            self.sagemaker.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
        except ClientError as exc:
            if not (error_code(exc) == "ValidationException" and _already_exists(error_message(exc))):
                raise
        return name


def _most_units(base: list[dict[str, Any]]) -> int:
    """Units before a variant's MaxConcurrency would pass the service's limit."""
    return max(1, min(MAX_CONCURRENCY // max(1, int(v["ServerlessConfig"]["MaxConcurrency"])) for v in base))


def _already_exists(message: str) -> bool:
    return bool(re.search(r"already exist", message, re.IGNORECASE))
