"""One model served by a ``batchsight serve`` child process of the component.

The model is first prepared (fetched, its checksum verified: model_package.py) on a thread
of its own, so a download never stalls the main loop; then the server is started on a loopback
port with ``--parent`` (it stops when the component is gone, even after a kill -9) and is
ready once ``/ping`` says healthy and names the model it was started on. detector_server.py
decides which models run, and when one replaces another.
"""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from batchsight.config import Config
from batchsight.local_detector import DetectorNotListening, DetectorUnavailable, DetectorUnhealthy, LocalDetector
from batchsight.model_package import ModelIdentity, ModelRefused, ModelUnavailable, PreparedModel, prepare

log = logging.getLogger(__name__)
SERVER_MODULE = "batchsight_detector.serve"
STARTUP_GRACE_SECONDS = 30.0  # a server just started may take this long to load its model
PING_TIMEOUT_SECONDS = 2.0    # a server still loading its model answers late: not a failure yet


def in_background(work: Callable[[], PreparedModel]) -> Future[PreparedModel]:
    """Run ``work`` on a daemon thread of its own: a download still running when the component
    stops must not hold its exit (one thread per model being prepared: three at most)."""
    future: Future[PreparedModel] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(work())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever reads the future
            future.set_exception(exc)

    threading.Thread(target=run, name="model-prepare", daemon=True).start()
    return future


def free_port() -> int:
    """A loopback port nothing listens on now, for a second server beside the first."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ModelProcess:
    """A model and the server process that judges with it, on its own port.

    ``prepared()`` tells whether the model file is ready (None while it is fetched);
    ``refused`` is set for a model that must not be used (damaged, unloadable): it is not tried
    again, unlike one that is only unavailable (missing yet, S3 unreachable) or a server that died.
    """

    def __init__(self, source: str, *, role: str, port: int, config: Config, s3: Any) -> None:
        self.source, self.role, self.port = source, role, port
        self.config = config
        self.client = LocalDetector(f"http://127.0.0.1:{port}", timeout=config.inference.timeout_seconds)
        self.model: PreparedModel | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.problem = ""
        self.refused = False
        self.ready = False            # /ping answered healthy since the process started
        self.next_try = 0.0           # monotonic time of the next attempt after a failure
        self.started_at = 0.0
        self._s3 = s3
        self._preparing: Future[PreparedModel] | None = None
        self.retry()

    @property
    def identity(self) -> ModelIdentity | None:
        return self.model.identity if self.model else None

    def describe(self) -> str:
        return str(self.identity) if self.identity else self.source

    def retry(self) -> None:
        """Prepare the model (again) on the worker thread, unless it was refused."""
        if self.refused or self.model is not None or self._preparing is not None:
            return
        source, s3, folder = self.source, self._s3, self.config.models_folder
        self._preparing = in_background(lambda: prepare(source, s3=s3, models_folder=folder))

    def prepared(self) -> bool | None:
        """True when the model file is ready; None while it is prepared; False when that failed
        (``problem`` says why, ``refused`` whether it may be tried again)."""
        if self.model is not None:
            return True
        if self._preparing is None:
            return False
        if not self._preparing.done():
            return None
        try:
            self.model = self._preparing.result()
        except ModelRefused as exc:
            self.refuse(str(exc))
        except ModelUnavailable as exc:
            self.problem = str(exc)
        except Exception as exc:  # noqa: BLE001 - disk, S3 or anything else: reported, tried again
            self.problem = f"model {self.source} not available: {exc}"
        finally:
            self._preparing = None
        if self.model is None:
            log.error("model not usable", extra={"role": self.role, "source": self.source, "problem": self.problem,
                                                 "retried": not self.refused})
            return False
        self.problem = ""
        return True

    def refuse(self, problem: str) -> None:
        """This model must not judge: say why, stop its server, never try it again."""
        self.problem, self.refused, self.ready = problem, True, False
        self.stop()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def starting(self) -> bool:
        """True while the model is prepared, or its server just started may still be loading it."""
        if self._preparing is not None:
            return True
        return self.alive() and time.monotonic() - self.started_at < STARTUP_GRACE_SECONDS

    def exited(self) -> str:
        """Why the server is gone when it died (it is then forgotten, to be started again); else ""."""
        if self.process is None or self.process.poll() is None:
            return ""
        code, self.process, self.ready = self.process.returncode, None, False
        return (f"the local detector process ({self.describe()}) exited with code {code}; "
                f"see {self.config.work_folder / 'detector.log'}")

    def move(self, port: int) -> None:
        """Serve on another port next time (this one may have been taken meanwhile)."""
        self.port = port
        self.client = LocalDetector(f"http://127.0.0.1:{port}", timeout=self.config.inference.timeout_seconds)

    def start(self) -> None:
        """Start the server on the prepared model (``prepared()`` is True)."""
        assert self.model is not None
        identity = self.model.identity
        log_file = (self.config.work_folder / "detector.log").open("ab")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", SERVER_MODULE, "--model", str(self.model.path), "--port", str(self.port),
                 "--name", identity.name, "--version", identity.version,
                 "--parent", str(os.getpid())],  # it stops when we are gone, even after a kill -9
                stdout=log_file, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            log_file.close()
        self.started_at, self.ready = time.monotonic(), False
        log.info("local detector started", extra={"role": self.role, "model": identity.name,
                                                  "version": identity.version, "file": str(self.model.path),
                                                  "port": self.port, "pid": self.process.pid})

    def check(self) -> bool | None:
        """Ask /ping: True when healthy on our model; None while it may still be loading; False
        when it failed (``problem`` says why; a model the server cannot load is refused)."""
        try:
            answer = self.client.check(timeout=PING_TIMEOUT_SECONDS)
        except DetectorNotListening as exc:
            if self.starting():
                return None
            self.problem = self.exited() or f"{exc}: not listening {STARTUP_GRACE_SECONDS:.0f} s after its start"
        except DetectorUnhealthy as exc:  # it loaded what we gave it and cannot use it
            if self.model is not None and self.model.sha256:
                self.refuse(f"the detector cannot load {self.describe()}: publish it again, fitted by this "
                            f"detector release, and deploy it ({exc})")  # a checked package: for good
                return False
            self.problem = str(exc)
        except DetectorUnavailable as exc:  # no answer in time: maybe still loading
            if self.starting():
                return None
            self.problem = str(exc)
        else:
            version = answer.get("version")
            if self.identity and version is not None and version != self.identity.version:
                self.problem = (f"port {self.port} is held by another detector (model {answer.get('model')} version "
                                f"{version}), not ours; stop it")
            else:
                self.ready, self.problem = True, ""
                return True
        self.stop()
        return False

    def stop(self) -> None:
        if self._preparing is not None:
            self._preparing.cancel()  # one already running finishes, unheard
            self._preparing = None
        process, self.process, self.ready = self.process, None, False
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("local detector stopped", extra={"role": self.role, "model": self.describe(), "port": self.port})
