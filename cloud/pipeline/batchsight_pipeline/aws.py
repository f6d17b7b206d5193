"""boto3 clients for the functions: created once per process, thread-safely.

Endpoints come from the standard AWS configuration (``AWS_ENDPOINT_URL`` points the local
emulation at moto), so no function knows whether it runs in AWS or on a laptop.
"""
from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
_clients: dict[str, Any] = {}
_lock = threading.Lock()


def client(service: str) -> Any:
    """A shared client; boto3's default session is not thread-safe, hence the lock."""
    with _lock:
        if service not in _clients:
            _clients[service] = boto3.session.Session().client(service, config=_CONFIG)
        return _clients[service]
