"""``batchsight serve``: the detector as an inference server, for on-premise inference.

    batchsight serve --model MODEL.npz [--host 127.0.0.1] [--port 8080]

It speaks the SageMaker inference-container contract (``GET /ping``, ``POST /invocations``
with the image bytes as the body), so the same server is what the gateway's edge modes call
over loopback and what a SageMaker endpoint could host. The gateway talks to it over HTTP
only: the edge program never imports the detector.

Health is explicit rather than inferred from a dead port: when the model file is missing or
unreadable the server still answers, ``/ping`` says 503 with the reason, and the edge routes
images to the cloud and says why on its status topic. The model file is re-read when it
changes (a Greengrass deployment replacing the artifact), so a new model needs no restart.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from batchsight_detector.model import DetectorModel

log = logging.getLogger("batchsight.serve")
MAX_BODY = 6 * 1024 * 1024
CONTENT_TYPES = ("image/jpeg", "image/png", "application/x-image")


class ModelSlot:
    """The model file and the model loaded from it, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._loaded: tuple[float, DetectorModel] | None = None
        self.problem = ""

    def current(self) -> DetectorModel | None:
        """The model for the file as it is now; None (and ``problem`` says why) when unusable."""
        try:
            mtime = self.path.stat().st_mtime
        except OSError as exc:
            self._unusable(f"model file {self.path} cannot be read: {exc.strerror or exc}")
            return None
        with self._lock:
            if self._loaded is None or self._loaded[0] != mtime:
                try:
                    self._loaded = (mtime, DetectorModel.load(self.path))
                except Exception as exc:  # noqa: BLE001 - any load failure is reported, not fatal
                    self._loaded = None
                    self._unusable(f"model file {self.path} is not a usable model: {exc}")
                    return None
                log.info("model loaded: %s (threshold %.4f)", self.path, self._loaded[1].threshold)
            self.problem = ""
            return self._loaded[1]

    def _unusable(self, problem: str) -> None:
        """Record why there is no model; log it once, not for every image."""
        if problem != self.problem:
            log.error("%s", problem)
        self.problem = problem


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
    return 200, {**result, "Model": {"Name": slot.path.name, "Fingerprint": model.training_fingerprint}}


def make_server(slot: ModelSlot, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/ping":
                self._send(404, {"error": f"no such path {self.path}"})
            elif slot.current() is None:
                self._send(503, {"status": "unhealthy", "reason": slot.problem})
            else:
                self._send(200, {"status": "healthy", "model": slot.path.name})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/invocations":
                self._send(404, {"error": f"no such path {self.path}"})
                return
            length = int(self.headers.get("Content-Length", "0"))
            if length > MAX_BODY:
                self._send(413, {"error": f"image of {length} bytes exceeds {MAX_BODY}"})
                return
            body = self.rfile.read(length)
            self._send(*answer(slot, body, self.headers.get("Content-Type", "")))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
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
        log.info("parent process %d is gone; stopping", parent)
        server.shutdown()

    threading.Thread(target=watch, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batchsight serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model file from `batchsight fit` (.npz)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback by default)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--parent", type=int, help="stop when the process with this id is gone "
                                                   "(the component passes its own)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    slot = ModelSlot(Path(args.model))
    slot.current()  # load now, so the first image does not wait (and a bad file is logged at once)
    try:
        server = make_server(slot, args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.parent:
        exit_with_parent(args.parent, server)
    log.info("serving %s on http://%s:%d (GET /ping, POST /invocations)", args.model, args.host, args.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
