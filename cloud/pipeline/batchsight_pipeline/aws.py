"""boto3 clients for the functions: created once per process, thread-safely.

Endpoints come from the standard AWS configuration (``AWS_ENDPOINT_URL`` points the local
emulation at moto), so no function knows whether it runs in AWS or on a laptop.
``CLIENT_CONFIG`` (retries, timeouts) is public for the clients built elsewhere, such as
the Lookout for Vision client, which comes from an archived service model.

The model's runtime (``sagemaker-runtime``: InvokeEndpoint) gets ``DETECT_CONFIG``, two
attempts of at most 25 s each: SQS redelivers an image whose call failed, so more retries buy
nothing but a longer worst case, and the drain must know how long one detect call can take
(``call_seconds``) to start none that could outlast its function's time.
"""
from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

__all__ = ["CLIENT_CONFIG", "DETECT_CONFIG", "call_seconds", "client", "reset"]

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
DETECT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 2}, connect_timeout=5, read_timeout=20)
_CONFIGS = {"sagemaker-runtime": DETECT_CONFIG}
MAX_BACKOFF_SECONDS = 20.0  # botocore's standard mode: min(2 ** attempt * random(), 20) between attempts
_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    """A shared client; boto3's default session is not thread-safe, hence the lock."""
    with _lock:
        if service not in _clients:
            _clients[service] = boto3.session.Session().client(service, config=_CONFIGS.get(service, CLIENT_CONFIG))
        return _clients[service]


def call_seconds(config: Config) -> float:
    """The longest one call of a client with ``config`` can take: every attempt timing out on
    connect and on read, with the longest backoff between attempts."""
    retries = config.retries or {}
    # botocore's max_attempts counts the retries alone, total_max_attempts the first call too
    attempts = int(retries.get("total_max_attempts", int(retries.get("max_attempts", 2)) + 1))
    backoff = sum(min(2.0 ** attempt, MAX_BACKOFF_SECONDS) for attempt in range(1, attempts))
    return attempts * (float(config.connect_timeout) + float(config.read_timeout)) + backoff


def reset() -> None:
    """Forget the shared clients: the next ``client`` call reads the AWS configuration afresh.

    A client keeps the endpoint and credentials it was made with; a process whose
    configuration changes (a test pointing ``AWS_ENDPOINT_URL`` at its own moto server)
    calls this. Lambda never needs to.
    """
    with _lock:
        _clients.clear()
