"""What the OPC UA tests share: a PLC as a real asyncua client over TCP, with its own certificate,
and results handed to the server through the real alert path (journal, Alerter, ObservedOutbox)."""
from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from batchsight.config import Config, config_from_dict
from batchsight.journal import ImageState, Journal

AWS = {"source_bucket": "src", "final_bucket": "final", "queue_url": "https://q", "state_machine_arn": "arn:sm"}
NS = "urn:batchsight:plant1:line-7:gw-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def opcua_config(tmp: Path, port: int, **opcua: Any) -> Config:
    users = tmp / "opcua-users.txt"
    if not users.exists():
        users.write_text("# the PLC's login\nplc:s3cret\n")
    settings = {"enabled": True, "endpoint": f"opc.tcp://127.0.0.1:{port}/batchsight",
                "users_file": str(users), **opcua}
    return config_from_dict({"site": "plant1", "line": "line-7", "device": "gw-1", "aws": AWS,
                             "drop_folder": str(tmp / "drop"), "work_folder": str(tmp / "work"),
                             "opcua": settings})


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path
    uri: str


def client_certificate(folder: Path, name: str = "plc") -> ClientCert:
    """A PLC's application instance certificate, made the way asyncua's examples make one."""
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"urn:test:{name}"
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {"organizationName": "test"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost"), x509.DNSName(socket.gethostname())],
        [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH])
    paths = ClientCert(folder / f"{name}.der", folder / f"{name}-key.pem", uri)
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    paths.key.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return paths


def trust(config: Config, cert: ClientCert) -> None:
    trusted = config.work_folder / "opcua-pki" / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    (trusted / cert.cert.name).write_bytes(cert.cert.read_bytes())


@asynccontextmanager
async def plc(endpoint: str, cert: ClientCert | None, *, user: str | None = "plc", password: str = "s3cret",
              mode: ua.MessageSecurityMode = ua.MessageSecurityMode.SignAndEncrypt) -> AsyncIterator[Client]:
    """A connected client: a secure channel with ``cert`` (None: no security), logged in as ``user``."""
    client = Client(endpoint, timeout=10)
    if cert is not None:
        client.application_uri = cert.uri
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert.cert), str(cert.key), mode=mode)
    if user is not None:
        client.set_user(user)
        client.set_password(password)
    async with client:
        yield client


async def node(client: Client, path: str) -> Node:
    index = await client.get_namespace_index(NS)
    return client.get_node(ua.NodeId(path, index))


async def read(client: Client, path: str) -> Any:
    return await (await node(client, path)).read_value()


def stored_result(journal: Journal, config: Config, n: int, *, anomalous: bool, **fields: Any) -> str:
    """An image the cloud has judged: its result stored in the journal, ready for the hand-off."""
    data = f"image {n}".encode()
    image_id = hashlib.sha256(data).hexdigest()
    spool = config.work_folder / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    (spool / f"{image_id}.jpg").write_bytes(data)
    assert journal.add({"image_id": image_id, "file_name": f"cam-{n}.jpg", "path": str(spool / f"{image_id}.jpg"),
                        "ext": "jpg", "size": len(data), "width": 640, "height": 480,
                        "captured_at": "2026-11-23T10:00:00.000Z", **fields})
    time.sleep(0.002)
    journal.advance([image_id], ImageState.SUBMITTED, batch_id="b1")
    document = {"v": 1, "image_id": image_id, "processed_at": "2026-11-23T10:00:05.000Z",
                "model": {"name": "detector.npz", "version": "3"},
                "result": {"Source": {"Type": "direct"}, "IsAnomalous": anomalous, "Confidence": 0.9}}
    journal.advance([image_id], ImageState.RESULT_STORED, is_anomalous=int(anomalous), confidence=0.9,
                    result_json=json.dumps(document))
    return image_id
