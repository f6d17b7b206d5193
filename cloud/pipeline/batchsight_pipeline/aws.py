"""boto3 clients for the functions: created once per process, thread-safely.

Endpoints come from the standard AWS configuration (``AWS_ENDPOINT_URL`` points the local
emulation at moto), so no function knows whether it runs in AWS or on a laptop.
``CLIENT_CONFIG`` (retries, timeouts) is public for the clients built elsewhere, such as
the Lookout for Vision client, which comes from an archived service model.
"""
from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

__all__ = ["CLIENT_CONFIG", "client", "reset"]

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    """A shared client; boto3's default session is not thread-safe, hence the lock."""
    with _lock:
        if service not in _clients:
            _clients[service] = boto3.session.Session().client(service, config=CLIENT_CONFIG)
        return _clients[service]


def reset() -> None:
    """Forget the shared clients: the next ``client`` call reads the AWS configuration afresh.

    A client keeps the endpoint and credentials it was made with; a process whose
    configuration changes (a test pointing ``AWS_ENDPOINT_URL`` at its own moto server)
    calls this. Lambda never needs to.
    """
    with _lock:
        _clients.clear()
