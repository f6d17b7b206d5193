"""Run the local detector next to the component when ``inference.model`` names a model.

On a gateway the model arrives as a Greengrass artifact (a file path) or is fetched from S3
(``s3://bucket/key``, into the work folder). The component then runs ``batchsight serve`` as
its own child process: the detector's numpy work never shares the component's memory or
GIL, a crash in it cannot take the journal down, and the component talks to it only through
the HTTP contract (local_detector.py). The child is restarted when it dies; edge_judge.py
decides when to try.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchsight.config import Config
from batchsight.live_config import Configured

log = logging.getLogger(__name__)
SERVER_MODULE = "batchsight_detector.serve"
STARTUP_GRACE_SECONDS = 30.0  # a server just started may take this long to load its model


class DetectorServer(Configured):
    def __init__(self, config: Config, *, s3: Any) -> None:
        self.config = config
        self.s3 = s3
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def wanted(self) -> bool:
        return bool(self.config.inference.model) and self.config.inference.mode != "cloud"

    def starting(self) -> bool:
        """True while a server we just started may still be loading its model."""
        return (self.process is not None and self.process.poll() is None
                and time.monotonic() - self.started_at < STARTUP_GRACE_SECONDS)

    def ensure_running(self) -> str:
        """Start (or restart) the server when needed; empty, or why it cannot run."""
        if not self.wanted or (self.process is not None and self.process.poll() is None):
            return ""
        if self.process is not None:  # it died: say so now, start it again at the next check
            code, self.process = self.process.returncode, None
            return (f"the local detector process exited with code {code}; "
                    f"see {self.config.work_folder / 'detector.log'}")
        if importlib.util.find_spec(SERVER_MODULE.rsplit(".", 1)[0]) is None:
            return ("the local detector is not installed on this gateway (batchsight_detector); "
                    "install detector/requirements.txt")
        try:
            model = self._model_file()
        except Exception as exc:  # noqa: BLE001 - S3 or disk: reported, retried later
            return f"model {self.config.inference.model} not available: {exc}"
        port = urlsplit(self.config.inference.endpoint).port
        log_file = (self.config.work_folder / "detector.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", SERVER_MODULE, "--model", str(model), "--port", str(port),
             "--parent", str(os.getpid())],  # it stops when we are gone, even after a kill -9
            stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log_file.close()
        self.started_at = time.monotonic()
        log.info("local detector started", extra={"model": str(model), "port": port, "pid": self.process.pid})
        return ""

    def _model_file(self) -> Path:
        """The model as a local file: the path itself, or the S3 object downloaded once."""
        source = self.config.inference.model
        if not source.startswith("s3://"):
            return Path(source)
        url = urlsplit(source)
        target = self.config.models_folder / Path(url.path).name
        if not target.is_file():  # model keys are versioned by name: a new model is a new key
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.part")
            self.s3.download_file(url.netloc, url.path.lstrip("/"), str(partial))
            os.replace(partial, target)
            log.info("model fetched from S3", extra={"source": source, "file": str(target)})
        return target

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
