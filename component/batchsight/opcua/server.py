"""The OPC UA server's own thread: an asyncio loop the gateway's main loop never waits on.

``OpcUaServer`` is the sink the plant floor starts (publishers/plant.py): ``committed`` and
``status`` put the work on a bounded queue and wake the loop (``call_soon_threadsafe``); the
loop turns it into writes and events. ``reconfigure`` with changed OPC UA settings (or a new
identity) makes the loop stop the server and build it again with the new ones; the results
counted so far (the handshake's counter, the last results, the shift counts) carry over.
A server that cannot start (the port is taken, say) is tried again every ``RETRY_SECONDS``
and says why in the component's status alarms until it runs.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from asyncua import Server, ua

from batchsight import alerts
from batchsight.config import Config
from batchsight.journal import ImageState, Journal
from batchsight.opcua.book import ResultBook
from batchsight.opcua.security import Gatekeeper, Pki, hosts, quiet_asyncua
from batchsight.opcua.space import AddressSpace
from batchsight.opcua.users import UserFile
from batchsight.plant_state import condition
from batchsight.verdicts import Messages, Verdict, verdicts

log = logging.getLogger(__name__)
BACKLOG = 1000
RETRY_SECONDS = 10.0
TICK_SECONDS = 1.0


def application_uri(config: Config) -> str:
    return f"urn:batchsight:{config.site}:{config.line}:{config.device}"


def namespace(config: Config) -> str:
    return config.opcua.namespace or application_uri(config)


def pki_folder(config: Config) -> Path:
    return Path(config.opcua.pki_folder) if config.opcua.pki_folder else config.work_folder / "opcua-pki"


def client_endpoint(config: Config) -> str:
    """The endpoint as a client on this machine writes it (0.0.0.0 is where the server listens)."""
    url = urlsplit(config.opcua.endpoint)
    if url.hostname not in ("0.0.0.0", "::", ""):
        return config.opcua.endpoint
    return urlunsplit(url._replace(netloc=f"{hosts()[0]}:{url.port}"))


def _settings(config: Config) -> tuple[Any, ...]:
    """What a running server is built from: a change needs a new server."""
    return (config.opcua, config.site, config.line, config.device, config.work_folder)


class OpcUaServer:
    def __init__(self, config: Config, journal: Journal) -> None:
        self.config, self.journal = config, journal
        self.alarm: str | None = None
        self.book = ResultBook(config.opcua.results_kept, config.opcua.shift_starts())
        self.running = threading.Event()       # set while the server listens with the current settings
        self._work: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=BACKLOG)
        self._stopping = threading.Event()
        self._rebuild = False
        self._status: dict[str, Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    # --- the component's side (never blocks) ------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="opcua", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._nudge()
        if self._thread is not None and timeout > 0:
            self._thread.join(timeout)

    def reconfigure(self, config: Config) -> None:
        """New settings: the loop builds the server again with them (``running`` is set again once
        it listens with them)."""
        if _settings(config) != _settings(self.config):
            self.running.clear()
            self._rebuild = True
        self.config = config
        self._nudge()

    def committed(self, messages: Messages) -> None:
        self._offer(("results", messages))

    def status(self, payload: dict[str, Any]) -> None:
        self._offer(("status", payload))

    def _offer(self, item: tuple[str, Any]) -> None:
        try:
            self._work.put_nowait(item)
        except queue.Full:
            log.warning("OPC UA server behind: an update dropped", extra={"backlog": BACKLOG})
        self._nudge()

    def _nudge(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has just closed
                loop.call_soon_threadsafe(wake.set)

    # --- the server's thread --------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception:
            log.exception("OPC UA server thread ended")

    async def _serve(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while not self._stopping.is_set():
            self._rebuild = False
            config = self.config
            try:
                server, space = await self._open(config)
            except Exception as exc:  # noqa: BLE001 - say it, and try again
                self._failed(config, exc)
                await self._sleep(RETRY_SECONDS)
                continue
            self.alarm = None
            if not self._rebuild:  # not already outdated by a reconfigure while it started
                self.running.set()
            log.info("OPC UA server listening", extra={"endpoint": config.opcua.endpoint,
                                                       "for_clients": client_endpoint(config),
                                                       "namespace": namespace(config)})
            try:
                while not (self._stopping.is_set() or self._rebuild):
                    await self._drain(space)
                    if self.book.roll():
                        await space.write_shifts()
                    await self._sleep(TICK_SECONDS)
            finally:
                self.running.clear()
                with contextlib.suppress(Exception):
                    await server.stop()
                log.info("OPC UA server stopped", extra={"endpoint": config.opcua.endpoint})

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    def _failed(self, config: Config, exc: Exception) -> None:
        alarm = f"OPC UA server not running at {config.opcua.endpoint}: {exc}"[:300]
        if alarm != self.alarm:
            log.error("OPC UA server cannot start; retrying", extra={"endpoint": config.opcua.endpoint,
                                                                     "error": str(exc), "retry_in_s": RETRY_SECONDS})
        self.alarm = alarm

    async def _open(self, config: Config) -> tuple[Server, AddressSpace]:
        settings = config.opcua
        pki = Pki(pki_folder(config))
        uri = application_uri(config)
        await asyncio.to_thread(pki.prepare, uri, hosts())
        gatekeeper = Gatekeeper(pki, UserFile(settings.users_file), allow_anonymous=settings.allow_anonymous)
        quiet_asyncua(gatekeeper)
        self.book.reconfigure(settings.results_kept, settings.shift_starts())
        server = Server(user_manager=gatekeeper)  # type: ignore[arg-type]
        await server.init()
        server.set_endpoint(settings.endpoint)
        server.set_server_name(f"batchsight {config.site}/{config.line}/{config.device}")
        await server.set_application_uri(uri)
        server.product_uri = "urn:batchsight"
        server.manufacturer_name = "batchsight"
        server.set_security_policy([getattr(ua.SecurityPolicyType, "NoSecurity" if p == "None" else p)
                                    for p in settings.policies()])
        tokens: list[type] = [ua.UserNameIdentityToken, ua.X509IdentityToken]
        server.set_identity_tokens([*tokens, ua.AnonymousIdentityToken] if settings.allow_anonymous else tokens)
        await server.load_certificate(str(pki.cert_file))
        await server.load_private_key(str(pki.key_file))
        server.set_certificate_validator(gatekeeper.validate)
        idx = await server.register_namespace(namespace(config))
        space = AddressSpace(server, idx, self.book, self._lookup)
        await space.build(site=config.site, line=config.line, device=config.device)
        await server.start()
        if self._status is not None:
            await space.condition(condition(self._status))
        return server, space

    async def _drain(self, space: AddressSpace) -> None:
        found: list[Verdict] = []
        latest: dict[str, Any] | None = None
        while True:
            try:
                kind, value = self._work.get_nowait()
            except queue.Empty:
                break
            if kind == "results":
                found += verdicts(value)
            else:
                latest = value
        if found:
            await space.results(found)
        if latest is not None:
            self._status = latest
            await space.condition(condition(latest))

    async def _lookup(self, image_id: str) -> Verdict | None:
        """A result older than the ones kept in memory: from the journal (on a worker thread)."""
        if len(image_id) != 64:
            return None
        record = await asyncio.to_thread(self.journal.get, image_id)
        if record is None or record.state is not ImageState.ALERTED or record.is_anomalous is None:
            return None
        return Verdict.from_payload(alerts.result_payload(self.config, record),
                                    alert=alerts.is_alert(self.config, record))
