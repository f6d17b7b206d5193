"""batchsight serve: the detector as an inference server, for on-premise inference.

    batchsight serve --model MODEL.npz [--host 127.0.0.1] [--port 8080] [--name NAME --version N]

It speaks the SageMaker inference-container contract (GET /ping, POST /invocations with the
image bytes as the body), so the same server is what the gateway's edge modes call over
loopback and what a SageMaker endpoint could host. The gateway talks to it over HTTP only:
the edge program never imports the detector.

Health is explicit rather than inferred from a dead port: run by the component (--parent) or
with --wait-for-model, the server answers even while the model file is missing or unusable,
/ping says 503 with the reason, and the edge routes images to the cloud and says why on its
status topic. Run by hand without them, such a file is an error at once. The model file is
re-read when it changes (a Greengrass deployment replacing the artifact), so a new model
needs no restart. SIGTERM or SIGINT stops the server and closes its port; the log is one
JSON object per line on stderr, with the gateway's field names. Answers and /ping name the
model (--name, --version: the component passes its package's), so every verdict says which
version judged it.
"""
from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from batchsight_detector import arguments, logs
from batchsight_detector.arguments import UsageError
from batchsight_detector.model import DetectorModel

log = logging.getLogger("batchsight.serve")
MAX_BODY = 6 * 1024 * 1024
CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")
IDLE_SECONDS = 300.0  # a kept-alive connection without a request this long is closed (its client reconnects)


class ModelSlot:
    """The model file and the model loaded from it, reloaded when the file changes."""

    def __init__(self, path: Path, *, name: str = "", version: str = "") -> None:
        self.path = path
        self.name = name or path.name   # what answers name the model by: the package's, else the file's
        self.version = version
        self._lock = threading.Lock()
        self._loaded: tuple[float, DetectorModel] | None = None
        self.problem = ""

    def load(self) -> DetectorModel:
        """The model for the file as it is now, read again only when the file changed; raises
        what reading raises (OSError, and ValueError for a file that is not a usable model)."""
        with self._lock:
            mtime = self.path.stat().st_mtime
            if self._loaded is None or self._loaded[0] != mtime:
                self._loaded = None
                self._loaded = (mtime, DetectorModel.load(self.path))
                log.info("model loaded", extra={"model": str(self.path),
                                                "threshold": round(self._loaded[1].threshold, 4)})
            return self._loaded[1]

    def current(self) -> DetectorModel | None:
        """The model for the file as it is now; None (and ``problem`` says why) when unusable.
        A new problem is logged once, not for every image."""
        try:
            model = self.load()
        except OSError as exc:
            problem = f"model file {self.path} cannot be read: {exc.strerror or exc}"
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not fatal
            problem = f"model file {self.path} is not a usable model: {exc}"
        else:
            self.problem = ""
            return model
        if problem != self.problem:
            log.error("%s", problem)
        self.problem = problem
        return None


def answer(slot: ModelSlot, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) for one invocation: the DetectAnomalyResult shape, or an error."""
    model = slot.current()
    if model is None:
        return 503, {"error": slot.problem}
    if len(body) > MAX_BODY:
        return 413, {"error": f"image of {len(body)} bytes exceeds {MAX_BODY}"}
    if content_type.split(";")[0].strip() not in CONTENT_TYPES:
        return 415, {"error": f"content type {content_type!r} is not one of {', '.join(CONTENT_TYPES)}"}
    try:
        result = model.detect(body)
    except ValueError as exc:
        return 400, {"error": f"image refused: {exc}"}
    return 200, {**result, "Model": {"Name": slot.name, "Version": slot.version,
                                     "Fingerprint": model.training_fingerprint}}


def make_server(slot: ModelSlot, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1: a client keeps its connection from image to image (the gateway's does), which
        # saves a TCP handshake and a server thread per image; every answer carries its length.
        protocol_version = "HTTP/1.1"
        timeout = IDLE_SECONDS  # a connection idle this long is closed, and its thread ends
        # TCP_NODELAY: on a kept connection the body written after the headers would otherwise wait
        # for the client's delayed ACK (Nagle): some 40 ms per image when images come back to back
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/ping":
                self._send(404, {"error": f"no such path {self.path}"})
            elif slot.current() is None:
                self._send(503, {"status": "unhealthy", "reason": slot.problem})
            else:
                self._send(200, {"status": "healthy", "model": slot.name, "version": slot.version})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/invocations":
                self.close_connection = True
                self._send(404, {"error": f"no such path {self.path}"})
                return
            length = int(self.headers.get("Content-Length", "0"))
            if length > MAX_BODY:
                self.close_connection = True  # the body stays unread: the connection cannot carry another request
                self._send(413, {"error": f"image of {length} bytes exceeds {MAX_BODY}"})
                return
            body = self.rfile.read(length)
            self._send(*answer(slot, body, self.headers.get("Content-Type", "")))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass  # one line per image would drown the gateway's log

    ThreadingHTTPServer.allow_reuse_address = True
    return ThreadingHTTPServer((host, port), Handler)


def exit_with_parent(parent: int, server: ThreadingHTTPServer) -> None:
    """Stop serving once the process that started us is gone (even killed with SIGKILL), so a
    restarted component never finds the port held by an orphan of its previous life."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        log.info("parent process %d is gone; stopping", parent, extra={"parent": parent})
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchsight serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, metavar="MODEL.npz",
                        help="model file written by batchsight fit (required)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=arguments.port, default=8080,
                        help="TCP port to listen on (default 8080; 0 takes a free one, logged)")
    parser.add_argument("--wait-for-model", action="store_true",
                        help="start without a usable model file and answer /ping with 503 and the reason "
                             "until one appears (default: off, a missing or wrong file is an error; "
                             "--parent implies it)")
    parser.add_argument("--name", default="", metavar="NAME",
                        help="the model's name in answers and /ping (default: the model file's name); the "
                             "component passes the package's")
    parser.add_argument("--version", default="", metavar="VERSION",
                        help="the model's version in answers and /ping (default: none); the component passes "
                             "the package's")
    parser.add_argument("--parent", type=int, metavar="PID",
                        help="stop when the process with this id is gone; the component passes its own "
                             "(default: none)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT (or the --parent is gone); 2 and one line for a wrong argument."""
    args = build_parser().parse_args(argv)
    try:
        logs.setup(arguments.log_level(os.environ.get("LOG_LEVEL", "INFO")))
        server, slot = _start(args)
    except UsageError as exc:
        print(f"batchsight serve: error: {exc}", file=sys.stderr)
        return 2
    if args.parent:
        exit_with_parent(args.parent, server)
    _stop_on_signals(server)
    host, port = server.server_address[:2]
    log.info("serving on http://%s:%d (GET /ping, POST /invocations)", host, port,
             extra={"model": str(slot.path), "host": host, "port": port, "healthy": not slot.problem})
    try:
        server.serve_forever()
    finally:
        server.server_close()
    log.info("stopped", extra={"port": port})
    return 0


def _start(args: argparse.Namespace) -> tuple[ThreadingHTTPServer, ModelSlot]:
    """The listening server and its model, checked in the order that costs least first."""
    if args.parent is not None and args.parent != os.getppid():
        raise UsageError(f"--parent {args.parent} is not the process that started this one "
                         f"({os.getppid()}); it is for the component, which passes its own id")
    wait = args.wait_for_model or args.parent is not None
    if not wait:
        arguments.model_file("--model", args.model)
    slot = ModelSlot(Path(args.model), name=args.name, version=args.version)
    server = _listen(slot, args.host, args.port)
    if wait:
        slot.current()  # load now, so the first image does not wait; a bad file is logged at once
        return server, slot
    try:
        slot.load()
    except (OSError, ValueError) as exc:
        server.server_close()
        if isinstance(exc, OSError):
            raise UsageError(f"--model {args.model}: {exc.strerror or exc}; {arguments.MODEL_ADVICE}") from exc
        raise UsageError(str(exc)) from exc
    return server, slot


def _listen(slot: ModelSlot, host: str, port: int) -> ThreadingHTTPServer:
    try:
        return make_server(slot, host, port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"--port {port}: {host}:{port} is in use ({reason}); stop what listens "
                             "there or give another --port") from exc
        if exc.errno == errno.EACCES:
            raise UsageError(f"--port {port}: not allowed to listen on {host}:{port} ({reason}); "
                             "give a port from 1024 up") from exc
        raise UsageError(f"--host {host}: cannot listen on {host}:{port} ({reason}); give an address "
                         "of this machine, e.g. 127.0.0.1 or 0.0.0.0") from exc


def _stop_on_signals(server: ThreadingHTTPServer) -> None:
    """SIGTERM and SIGINT stop serving: the port is closed and main() returns 0."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers belong to the main thread (a test may serve from another)

    def stop(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        # shutdown() waits for serve_forever(), which runs in this (the main) thread: not here
        threading.Thread(target=server.shutdown, daemon=True).start()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)


if __name__ == "__main__":
    raise SystemExit(main())
