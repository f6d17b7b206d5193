"""A model backend plug-in for the function tests: ``MODEL_BACKEND=plugin:tests.cloud.fake_backend:FakeBackend``.

Every invocation builds its backend anew from the environment, as in Lambda, while a real
model's hosting outlives the invocation that started it: so this one keeps its hosting in
the module (``hosting``), which the ``fake_model`` fixture replaces for each test. A start
leaves the model STARTING; a test moves it on by setting ``hosting.status``, as the real
service would in its own time.

Detect needs no hosting; the image's first byte says what the model makes of it:
b"A" anomalous (with a mask, as PNG bytes), b"R" rejected (poison), b"E" a transient
model error, anything else normal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from batchsight_pipeline.backends.base import HOSTED, MASK_KEY, STARTING, STOPPED, ModelBackend, ModelRejectedImage

SPEC = f"plugin:{__name__}:FakeBackend"
MODEL_ID = "fake-model"
MASK = b"\x89PNG\r\n\x1a\n" + b"mask"


@dataclass
class Hosting:
    """The fake service's side: the model's status now, and what it was asked to do."""

    status: str = STOPPED
    starts: list[str] = field(default_factory=list)  # the run token of each start
    stops: int = 0


hosting = Hosting()


class FakeBackend(ModelBackend):
    name = "fake"

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> FakeBackend:
        return cls(start_timeout_seconds=start_timeout_seconds)

    @property
    def model_id(self) -> str:
        return MODEL_ID

    def _start(self, run_token: str) -> str:
        hosting.starts.append(run_token)
        if hosting.status != HOSTED:
            hosting.status = STARTING
        return hosting.status

    def _describe(self) -> tuple[str, str]:
        return hosting.status, ""

    def _stop(self) -> None:
        hosting.stops += 1
        hosting.status = STOPPED

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        if image.startswith(b"R"):
            raise ModelRejectedImage("the model cannot read this image")
        if image.startswith(b"E"):
            raise RuntimeError("the model is overloaded")
        if image.startswith(b"A"):
            return {"Source": {"Type": "direct"}, "IsAnomalous": True, "Confidence": 0.9, MASK_KEY: MASK}
        return {"Source": {"Type": "direct"}, "IsAnomalous": False, "Confidence": 0.2}
