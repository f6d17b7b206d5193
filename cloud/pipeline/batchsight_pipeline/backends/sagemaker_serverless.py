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
"""
from __future__ import annotations

from batchsight_pipeline.backends.base import ModelBackend
from batchsight_pipeline.backends.sagemaker import SageMakerBackend


class SageMakerServerlessBackend(SageMakerBackend):
    name = "sagemaker-serverless"
    idle_cost = False

    def _stop(self) -> None:
        """Nothing bills while the endpoint idles: keep it for the next batch."""

    def scale(self, units: int) -> int:
        """More concurrent callers only: the endpoint scales itself up to its ServerlessConfig's
        MaxConcurrency (an instance count would not apply to it)."""
        return ModelBackend.scale(self, units)
