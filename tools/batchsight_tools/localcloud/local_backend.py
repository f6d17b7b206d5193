"""The ``local`` backend: the batchsight detector, "hosted" on this machine.

A plug-in of the tools (``MODEL_BACKEND=plugin:batchsight_tools.localcloud.local_backend:LocalBackend``,
which the local cloud sets for ``ModelBackend=local``): it exists only in the embedded default,
so it never ships to Lambda.

Hosting is modelled for real rather than faked: start writes a hosting record, the model
becomes HOSTED after a configured warm-up, and stop closes the record in a ledger, so the
demo and the tests can measure hosted time and prove that nothing is left running. State
lives in files because Lambda invocations share nothing in memory. Settings are read through
``batchsight_pipeline.environment``, so a model route's (``LOCAL_MODEL_PATH`` in its parameter)
stand in for the stack's, and each route's hosting is recorded in a folder of its own, as each
route's SageMaker endpoint is its own.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from batchsight_pipeline.backends.detector_judge import IN_PROCESS_DETECT_SECONDS, judge, load
from batchsight_pipeline.environment import number, required
from batchsight_pipeline.routes import DEFAULT, current
from batchsight_tools.localcloud.hosting_record import RecordHostedBackend


class LocalBackend(RecordHostedBackend):
    name = "local"
    max_detect_seconds = IN_PROCESS_DETECT_SECONDS  # judged in the drain function's process
    PLUGIN = "plugin:batchsight_tools.localcloud.local_backend:LocalBackend"

    def __init__(self, *, model_path: Path, state_dir: Path, startup_seconds: float,
                 start_timeout_seconds: float) -> None:
        super().__init__(state_dir=state_dir, startup_seconds=startup_seconds,
                         start_timeout_seconds=start_timeout_seconds)
        self.model_path = model_path

    @classmethod
    def from_env(cls, *, start_timeout_seconds: float) -> LocalBackend:
        route = current()
        state_dir = Path(required("LOCAL_MODEL_STATE_DIR"))
        return cls(model_path=Path(required("LOCAL_MODEL_PATH")),
                   state_dir=state_dir if route == DEFAULT else state_dir / "routes" / route,
                   startup_seconds=number("LOCAL_MODEL_STARTUP_SECONDS", 2, minimum=0),
                   start_timeout_seconds=start_timeout_seconds)

    @property
    def model_id(self) -> str:
        return self.model_path.name

    def _start(self, run_token: str) -> str:
        if not self.model_path.is_file():
            raise FileNotFoundError(f"local model {self.model_path} does not exist; "
                                    "fit one with `batchsight fit`")
        return super()._start(run_token)

    def detect(self, image: bytes, *, content_type: str) -> dict[str, Any]:
        self._require_hosted()
        return judge(load(self.model_path), image)

    def hosted_seconds(self) -> float:
        """Total hosted time in the ledger (closed intervals only)."""
        return self.hosting.hosted_seconds()
