"""The ``lambda`` backend: the drain function runs batchsight's detector itself.

For a model that judges an image in tens of milliseconds on a CPU, renting a hosted endpoint by
the hour and starting and stopping it around batches costs more and answers later than running
the detector in the function that already holds the image. There is nothing to host: ``start``
resolves the model's current version from the model bucket's index and checks that its package
is complete (its model file fetched and checksum verified), so an undeployed or damaged model
fails the batch at once instead of dead-lettering every image; ``stop`` has nothing to release.
Only the drain function loads the detector (the DetectorLayer); ``start`` does not need it. Every image of an
execution is judged with the version its start resolved (``pinned``).

Environment (read by ``from_env``):
    MODEL_BUCKET    the model bucket (cloud/template.yaml ModelBucket)
    MODEL_NAME      the model's name: its packages are models/{MODEL_NAME}/{version}/
"""
from __future__ import annotations

from typing import Any, Self

from batchsight_pipeline import model_store
from batchsight_pipeline.backends.base import HOSTED, ModelBackend, ModelState
from batchsight_pipeline.backends.detector_judge import IN_PROCESS_DETECT_SECONDS, judge, load
from batchsight_pipeline.environment import required


class ServerlessDetectorBackend(ModelBackend):
    name = "lambda"
    idle_cost = False
    max_detect_seconds = IN_PROCESS_DETECT_SECONDS  # the detector runs in the drain function itself

    def __init__(self, *, bucket: str, model_name: str, start_timeout_seconds: float, version: str = "") -> None:
        super().__init__(start_timeout_seconds=start_timeout_seconds)
        self.bucket, self.model_name, self._version = bucket, model_name, version

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> Self:
        return cls(bucket=required("MODEL_BUCKET"), model_name=required("MODEL_NAME"),
                   start_timeout_seconds=start_timeout_seconds)

    @property
    def model_id(self) -> str:
        return self.model_name

    @property
    def model_version(self) -> str:
        return self._version

    def pinned(self, state: ModelState) -> ServerlessDetectorBackend:
        return type(self)(bucket=self.bucket, model_name=self.model_name,
                          start_timeout_seconds=self.start_timeout_seconds, version=state.version)

    def _start(self, run_token: str) -> str:
        self._version = model_store.current_version(self.bucket, self.model_name)
        model_store.fetch(self.bucket, self.model_name, self._version)
        return HOSTED

    def _describe(self) -> tuple[str, str]:
        return HOSTED, ""  # a function is always there to run the detector

    def _stop(self) -> None:
        """Nothing is hosted, so nothing bills once the drain ends."""

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        if not self._version:  # judged outside an execution's start: the current version
            self._version = model_store.current_version(self.bucket, self.model_name)
        return judge(load(model_store.fetch(self.bucket, self.model_name, self._version)), image)
