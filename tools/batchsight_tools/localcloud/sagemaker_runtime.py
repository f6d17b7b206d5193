"""A SageMaker Runtime for the local cloud: InvokeEndpoint answered by the local detector.

moto emulates the SageMaker control plane (CreateEndpoint, DescribeEndpoint, DeleteEndpoint)
but its InvokeEndpoint cannot take binary bodies. This server speaks InvokeEndpoint's REST
protocol (POST /endpoints/{name}/invocations), refuses endpoints that moto does not report
InService, and answers in the DetectAnomalyResult shape that the Lookout for Vision team's
SageMaker algorithm uses, so the pipeline's `sagemaker` backend runs unchanged against it.
Point boto3 at it with AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from collections.abc import Callable

from batchsight_detector import DetectorModel

MAX_BODY = 6 * 1024 * 1024
CONTENT_TYPES = ("image/jpeg", "image/png")


class SageMakerRuntime:
    """Serve one detector model behind every InService endpoint that moto knows."""

    def __init__(self, model_path: Path, endpoint_status: Callable[[str], str | None]) -> None:
        self.model = DetectorModel.load(model_path)
        self.endpoint_status = endpoint_status
        self.invocations = 0
        handler = _handler_for(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> SageMakerRuntime:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, endpoint: str, body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) as SageMaker Runtime would answer."""
        status = self.endpoint_status(endpoint)
        if status != "InService":
            return 400, {"__type": "ValidationError",
                         "message": f"Endpoint {endpoint} of account 123456789012 not found."
                         if status is None else f"Endpoint {endpoint} is {status}, not InService."}
        if len(body) > MAX_BODY:
            return 413, {"__type": "ValidationError", "message": "Request body exceeds 6 MiB"}
        if content_type not in CONTENT_TYPES:
            return 424, _model_error(415, f"unsupported content type {content_type}")
        try:
            result = self.model.detect(body)
        except ValueError as exc:
            return 424, _model_error(400, str(exc))
        self.invocations += 1
        return 200, result


def _model_error(original_status: int, message: str) -> dict[str, Any]:
    return {"__type": "ModelError", "Message": message, "OriginalStatusCode": original_status,
            "OriginalMessage": message}


def _handler_for(runtime: SageMakerRuntime) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "endpoints" or parts[2] != "invocations":
                self._send(404, {"__type": "UnknownOperationException", "message": self.path})
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, answer = runtime.invoke(parts[1], body, self.headers.get("Content-Type", ""))
            self._send(status, answer)

        def _send(self, status: int, answer: dict[str, Any]) -> None:
            payload = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if "__type" in answer:
                self.send_header("x-amzn-ErrorType", answer["__type"])
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass  # the pipeline logs what matters

    return Handler
