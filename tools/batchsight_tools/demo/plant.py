"""The demo's OPC UA server (``batchsight demo --opcua``): the gateway's own server switched on,
on a free port, with a login and a client certificate made for this run.

The demo prints what a person needs to point their own OPC UA client (UaExpert, say) at it, and
at the end reads the PLC handshake itself, as a PLC would (Basic256Sha256 SignAndEncrypt, logged
in), to show the counter and the last part. Each image's part id is its file name's stem
(``part.file_pattern``), so LastPartId names a file the camera dropped.
"""
from __future__ import annotations

import asyncio
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from batchsight_tools.localcloud.stack import free_port

USER = "plc"
CLIENT_URI = "urn:batchsight:demo-plc"
PART_PATTERN = r"(?P<part_id>[^/]+)\.[A-Za-z]+$"


@dataclass(frozen=True)
class OpcUaAccess:
    """How to reach the demo's server: the endpoint, the login, and the certificate folders."""

    endpoint: str
    namespace: str
    password: str
    pki: Path
    client_cert: Path
    client_key: Path

    def lines(self) -> list[str]:
        return [f"  OPC UA server at {self.endpoint} (docs/plant-floor.md): user {USER}, password {self.password};",
                "    security Basic256Sha256 Sign or SignAndEncrypt: put your client's certificate into "
                f"{self.pki / 'trusted'}/",
                f"    (a refused one is kept in {self.pki / 'rejected'}/); the server's own is "
                f"{self.pki / 'own' / 'cert.der'}"]


def opcua_settings(work: Path, namespace: str) -> tuple[dict[str, Any], OpcUaAccess]:
    """The gateway's opcua and part settings for the demo, and how to reach its server."""
    password = secrets.token_urlsafe(9)
    (work / "opcua-users.txt").write_text(f"{USER}:{password}\n")
    pki = work / "opcua-pki"
    (pki / "trusted").mkdir(parents=True, exist_ok=True)
    access = OpcUaAccess(f"opc.tcp://127.0.0.1:{free_port()}/batchsight", namespace, password, pki,
                         work / "demo-plc.der", work / "demo-plc-key.pem")
    _client_certificate(access)
    (pki / "trusted" / access.client_cert.name).write_bytes(access.client_cert.read_bytes())
    settings = {"opcua": {"enabled": True, "endpoint": access.endpoint, "users_file": str(work / "opcua-users.txt"),
                          "pki_folder": str(pki)},
                "part": {"file_pattern": PART_PATTERN}}
    return settings, access


def _client_certificate(access: OpcUaAccess) -> None:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, "batchsight demo PLC", {"organizationName": "batchsight demo"},
        [x509.UniformResourceIdentifier(CLIENT_URI), x509.DNSName("localhost"), x509.DNSName(socket.gethostname())],
        [ExtendedKeyUsageOID.CLIENT_AUTH])
    access.client_cert.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    access.client_key.write_bytes(cert_gen.dump_private_key_as_pem(key))


def read_handshake(access: OpcUaAccess) -> str:
    """What a PLC reads in PlcHandshake now, as one line; the reason when it cannot."""
    try:
        values = asyncio.run(_read(access))
    except Exception as exc:  # noqa: BLE001 - the demo says what went wrong and goes on
        return f"  OPC UA: the demo's PLC could not read the handshake: {type(exc).__name__}: {exc}"
    told = ", ".join(f"{name} {value}" for name, value in values.items())
    return f"  OPC UA: a PLC read PlcHandshake over Basic256Sha256 SignAndEncrypt: {told}"


async def _read(access: OpcUaAccess) -> dict[str, Any]:
    client = Client(access.endpoint, timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(SecurityPolicyBasic256Sha256, str(access.client_cert), str(access.client_key),
                              mode=ua.MessageSecurityMode.SignAndEncrypt)
    client.set_user(USER)
    client.set_password(access.password)
    async with client:
        index = await client.get_namespace_index(access.namespace)
        return {name: await client.get_node(f"ns={index};s=VisionSystem.PlcHandshake.{name}").read_value()
                for name in ("ResultReady", "LastPartId", "LastResultNG", "Ready")}
