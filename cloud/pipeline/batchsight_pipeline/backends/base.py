"""The model backend contract: start, status, detect, stop.

The state machine only ever sees a ``ModelState``; each backend fills in four hooks.
Behaviour shared by every backend (the start timeout, the state shape) lives here so
that a new backend cannot get it wrong.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from datetime import datetime, UTC
from typing import Any, Self

from batchsight_pipeline.aws import DETECT_CONFIG, call_seconds

STARTING, HOSTED, FAILED, TIMED_OUT, STOPPED = "STARTING", "HOSTED", "FAILED", "TIMED_OUT", "STOPPED"
# A detect result may carry its anomaly mask as PNG bytes under this private key; the drain
# pops it and stores it as an object of its own next to the result (never inline in the JSON).
MASK_KEY = "_mask_png"


class ModelRejectedImage(ValueError):
    """The backend will never accept this image (wrong format, size, corrupt): a poison message."""


class ModelBusy(RuntimeError):
    """The model is between states (still starting, still stopping): retry the action later.

    The state machine's Retry matches errors by class name, so this name is the contract.
    """


class UnexpectedModelResponse(RuntimeError):
    """The model answered in a shape batchsight does not understand (a deployment error)."""


@dataclass(frozen=True)
class ModelState:
    """What the state machine carries between polls (all fields JSON-friendly)."""

    backend: str
    model_id: str
    status: str
    started_at: str = ""
    run_token: str = ""
    reason: str = ""
    version: str = ""  # the model version this execution judges with ("" where the backend has none)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelBackend(ABC):
    """One hosted (or hostable) model; ``start`` and ``stop`` must be idempotent."""

    name: str = "base"
    # A hosted model bills while it is up, work or not: the reaper stops one nobody owns. A
    # serverless backend bills per image and has nothing to reap.
    idle_cost: bool = True
    # The longest one detect call can take (its client's timeouts and retries, aws.py): the
    # drain starts no call it could not finish before its function's time runs out.
    max_detect_seconds: float = call_seconds(DETECT_CONFIG)
    # Units of capacity the backend can run at once (overload.py); the stack's MaxScaleUnits may
    # allow fewer. A unit is DrainWorkers more drain workers, plus whatever ``scale`` adds.
    max_units: int = 64

    def __init__(self, *, start_timeout_seconds: float) -> None:
        self.start_timeout_seconds = start_timeout_seconds

    @classmethod
    @abstractmethod
    def from_env(cls, *, start_timeout_seconds: float) -> Self:
        """Build the backend from its own settings in the function's environment."""

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Human-readable identity of the model (endpoint name, project/version, file)."""

    @property
    def model_version(self) -> str:
        """The version of the model this backend judges with, where the backend knows one."""
        return ""

    def pinned(self, state: ModelState) -> ModelBackend:
        """This backend for the model an execution started (``state``): the drain judges every
        image of an execution with the same version, even if a new one is deployed meanwhile.
        A hosted endpoint is its model, so by default this is the backend itself."""
        return self

    @abstractmethod
    def _start(self, run_token: str) -> str:
        """Ask for hosting; return the raw status (STARTING or HOSTED)."""

    @abstractmethod
    def _describe(self) -> tuple[str, str]:
        """Return (status, reason) with status in STARTING/HOSTED/FAILED/STOPPED."""

    @abstractmethod
    def _stop(self) -> None:
        """Release hosting; a no-op when nothing is hosted."""

    @abstractmethod
    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        """Return a DetectAnomalyResult-shaped dict; raise ModelRejectedImage for poison."""

    def start(self, *, run_token: str) -> ModelState:
        status = self._start(run_token)
        return self._state(status, started_at=_utc_now(), run_token=run_token)

    def status(self, previous: ModelState) -> ModelState:
        """Poll hosting, turning a start that takes too long into TIMED_OUT."""
        status, reason = self._describe()
        if status == STARTING and _age_seconds(previous.started_at) > self.start_timeout_seconds:
            status, reason = TIMED_OUT, f"not hosted within {self.start_timeout_seconds:.0f} s"
        return self._state(status, started_at=previous.started_at,
                           run_token=previous.run_token, reason=reason, version=previous.version)

    def hosting_status(self) -> str:
        """The backend's raw status now (STARTING, HOSTED, FAILED or STOPPED)."""
        return self._describe()[0]

    def scale(self, units: int) -> int:
        """Run ``units`` units of capacity; the units in effect afterwards.

        By default a unit is only more parallel drain workers, which the pipeline runs itself:
        right for a backend that bills per image and has no capacity of its own to add (the
        detector in the drain function, a serverless endpoint, a plug-in that says nothing). A
        hosted endpoint adds instances; a backend that cannot grow sets ``max_units = 1``.
        """
        return max(1, min(units, self.max_units))

    def stop(self) -> ModelState:
        self._stop()
        return self._state(STOPPED)

    def _state(self, status: str, **fields: str) -> ModelState:
        fields.setdefault("version", self.model_version)
        return ModelState(backend=self.name, model_id=self.model_id, status=status, **fields)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat()


def _age_seconds(started_at: str) -> float:
    if not started_at:
        return 0.0
    return time.time() - datetime.fromisoformat(started_at).timestamp()
