"""Who may talk to the OPC UA server: certificates, a trust list, users, and one log line per refusal.

The ``opcua.pki_folder`` (default ``{work_folder}/opcua-pki``) holds:

- ``own/cert.der`` and ``own/key.pem``: the server's application instance certificate and key,
  generated at the first start when there are none (RSA 2048, SHA-256, five years, the
  application URI and the host names in its subjectAltName; the key readable by the component
  user only). Put a certificate of your own there instead, or delete both to get a new pair;
- ``trusted/``: the client certificates (DER or PEM) the server accepts, or the CA certificates
  that issued them. The folder is read again when it changes: no restart;
- ``rejected/``: each refused client certificate, written once, so that an engineer can check it
  and move it to ``trusted/`` (the usual OPC UA workflow).

A client must open a Basic256Sha256 Sign or SignAndEncrypt channel (``opcua.security``) with a
certificate in the trust list, then log in with a user name and password from
``opcua.users_file`` or with a trusted certificate as its identity; anonymous sessions only with
``opcua.allow_anonymous``. Each refusal is one warning naming the client and what to do, at most
once every ten minutes per client and reason; asyncua's own error lines for it are dropped.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import cert_gen, uacrypto
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from batchsight.opcua.users import UserFile

log = logging.getLogger(__name__)
CERT_DAYS = 5 * 365
RENEW_BEFORE = timedelta(days=30)
REPEAT_SECONDS = 600.0
_NOISE = ("sending service fault response", "Not trusted certificate used", "Rejected active session")
_QUIET_LOGGERS = ("asyncua.server.uaprocessor", "asyncua.server.internal_session", "asyncua.crypto.truststore",
                  "asyncua.crypto.uacrypto")


class Pki:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.own, self.trusted, self.rejected = folder / "own", folder / "trusted", folder / "rejected"
        self.cert_file, self.key_file = self.own / "cert.der", self.own / "key.pem"

    def prepare(self, app_uri: str, hosts: list[str]) -> None:
        """Make the folders, and the server's certificate and key unless usable ones are there."""
        for folder in (self.own, self.trusted, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.own, 0o700)
        if self.cert_file.is_file() and self.key_file.is_file() and self._usable(app_uri):
            return
        key = cert_gen.generate_private_key()
        cert = cert_gen.generate_self_signed_app_certificate(
            key, f"batchsight {hosts[0]}", {"organizationName": "batchsight"},
            [x509.UniformResourceIdentifier(app_uri), *(x509.DNSName(h) for h in hosts)],
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], days=CERT_DAYS)
        fd = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(cert_gen.dump_private_key_as_pem(key))
        self.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        log.info("OPC UA server certificate generated: give it to the PLC's trust list",
                 extra={"certificate": str(self.cert_file), "thumbprint": thumbprint(cert),
                        "application_uri": app_uri, "valid_until": cert.not_valid_after_utc.isoformat()})

    def _usable(self, app_uri: str) -> bool:
        try:
            cert = x509.load_der_x509_certificate(self.cert_file.read_bytes())
            uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.UniformResourceIdentifier)
        except (OSError, ValueError, x509.ExtensionNotFound):
            return False
        return app_uri in uris and cert.not_valid_after_utc - datetime.now(UTC) > RENEW_BEFORE


def thumbprint(cert: x509.Certificate) -> str:
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()  # OPC UA's thumbprint is SHA-1


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else cert.subject.rfc4514_string()


def _load(path: Path) -> x509.Certificate | None:
    try:
        data = path.read_bytes()
        return x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    except (OSError, ValueError):
        return None


class Gatekeeper:
    """The certificate validator and the user manager asyncua asks (a ServiceError refuses)."""

    def __init__(self, pki: Pki, users: UserFile, *, allow_anonymous: bool) -> None:
        self.pki, self.users, self.allow_anonymous = pki, users, allow_anonymous
        self._seen: tuple[int, tuple[str, ...]] | None = None
        self._trusted: list[x509.Certificate] = []
        self._said: dict[tuple[str, str], float] = {}

    # --- the trust list ---------------------------------------------------------------------------
    def trusted_certificates(self) -> list[x509.Certificate]:
        folder = self.pki.trusted
        try:
            names = tuple(sorted(p.name for p in folder.iterdir()))
            mark = (folder.stat().st_mtime_ns, names)
        except OSError:
            return []
        if mark != self._seen:
            self._trusted = [c for c in (_load(folder / n) for n in names) if c is not None]
            self._seen = mark
        return self._trusted

    def is_trusted(self, cert: x509.Certificate) -> bool:
        der = cert.public_bytes(serialization.Encoding.DER)
        for anchor in self.trusted_certificates():
            if anchor.public_bytes(serialization.Encoding.DER) == der:
                return True
            if anchor.subject == cert.issuer:
                try:
                    cert.verify_directly_issued_by(anchor)
                    return True
                except (ValueError, TypeError, InvalidSignature):
                    continue  # a namesake, not the issuer
        return False

    async def validate(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        """Called for every new session with the client's application certificate."""
        who = f"{_common_name(cert)} ({app.ApplicationUri}, thumbprint {thumbprint(cert)})"
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            self.refuse(who, "its certificate is expired or not yet valid", "renew the client's certificate",
                        ua.StatusCodes.BadCertificateTimeInvalid)
        try:
            uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            uris = []
        if app.ApplicationUri not in uris:
            self.refuse(who, "its application URI is not the one in its certificate",
                        "make the client's certificate for its application URI",
                        ua.StatusCodes.BadCertificateUriInvalid)
        if not self.is_trusted(cert):
            saved = self._keep_rejected(cert)
            self.refuse(who, "its certificate is not trusted",
                        f"if it is yours, move {saved} to {self.pki.trusted}/", ua.StatusCodes.BadCertificateUntrusted)

    def _keep_rejected(self, cert: x509.Certificate) -> Path:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", _common_name(cert))[:60]
        path = self.pki.rejected / f"{name} [{thumbprint(cert)}].der"
        if not path.exists():
            with contextlib.suppress(OSError):
                path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        return path

    # --- users ------------------------------------------------------------------------------------
    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username is not None:
            if self.users.check(username, password or ""):
                return User(role=UserRole.User, name=username)
            self.refuse(f"user {username!r}", "wrong user name or password",
                        f"check {self.users.path or 'the users file (opcua.users_file)'}")
        if certificate is not None:
            cert = uacrypto.x509_from_der(certificate) if isinstance(certificate, bytes) else certificate
            if self.is_trusted(cert):
                return User(role=UserRole.User, name=_common_name(cert))
            if not self.allow_anonymous:
                self.refuse(_common_name(cert), "its user certificate is not trusted",
                            f"move it to {self.pki.trusted}/", ua.StatusCodes.BadIdentityTokenRejected)
        if self.allow_anonymous:
            return User(role=UserRole.User, name="anonymous")
        self.refuse("a client", "anonymous access is off", "log in with a user name and password or a trusted "
                    "certificate", ua.StatusCodes.BadIdentityTokenRejected)
        return None

    def refuse(self, who: str, why: str, what_to_do: str, code: int = ua.StatusCodes.BadUserAccessDenied) -> None:
        """Say it (``say``), then refuse: asyncua answers the client with ``code``."""
        self.say(who, why, what_to_do)
        raise ServiceError(code)

    def say(self, who: str, why: str, what_to_do: str) -> None:
        """The one warning of a refusal, at most every ten minutes per client and reason (a PLC
        retrying every second must not flood the log)."""
        key, now = (who, why), time.monotonic()
        if now - self._said.get(key, -REPEAT_SECONDS) >= REPEAT_SECONDS:
            self._said[key] = now
            log.warning(f"OPC UA client refused: {who}: {why}; {what_to_do}", extra={"client": who, "reason": why})


class _Quiet(logging.Filter):
    """Drops asyncua's own lines about a refusal the Gatekeeper has already said clearly; an
    anonymous login asyncua refuses before asking us is said here, once."""

    def __init__(self, gatekeeper: Gatekeeper) -> None:
        super().__init__()
        self.gatekeeper = gatekeeper

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("Rejected active session"):
            self.gatekeeper.say("a client", "anonymous access is off",
                                "log in with a user name and password or a trusted certificate")
            return False
        return not message.startswith(_NOISE)


def quiet_asyncua(gatekeeper: Gatekeeper) -> None:
    quiet = _Quiet(gatekeeper)
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, _Quiet)]:
            logger.removeFilter(old)
        logger.addFilter(quiet)
    logging.getLogger("asyncua").setLevel(logging.WARNING)


def hosts() -> list[str]:
    """The names a client may use for this gateway, for the certificate's subjectAltName."""
    names = [socket.gethostname(), "localhost"]
    with contextlib.suppress(OSError):
        names.append(socket.getfqdn())
    return list(dict.fromkeys(n for n in names if n))
