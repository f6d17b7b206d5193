"""The OPC UA server against a real asyncua client over TCP, the way a PLC uses it: a
Basic256Sha256 channel with a trusted certificate and a login, the handshake tags, the
ResultReady events, the methods, and the results handed over by the real alert path."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import ua

from batchsight.alerter import Alerter
from batchsight.config import Config
from batchsight.journal import Journal
from batchsight.opcua import OpcUaServer
from batchsight.publishers.plant import ObservedOutbox
from tests.gateway.opcua_support import (ClientCert, client_certificate, free_port, node, opcua_config, plc, read,
                                         stored_result, trust)
from tests.gateway.test_outbox import FakeBroker
from tests.support import wait_for

HS = "VisionSystem.PlcHandshake"
LAST = "VisionSystem.ResultManagement.LastResult"


def started(tmp_path: Path, **opcua: Any) -> tuple[Config, Journal, OpcUaServer, ClientCert]:
    """A running server with a trusted PLC certificate."""
    config = opcua_config(tmp_path, free_port(), **opcua)
    journal = Journal(config.journal_path)
    cert = client_certificate(tmp_path / "plc")
    trust(config, cert)
    server = OpcUaServer(config, journal)
    server.start()
    assert server.running.wait(30), server.alarm
    return config, journal, server, cert


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Config, Journal, OpcUaServer, ClientCert]]:
    config, journal, server, cert = parts = started(tmp_path)
    yield parts
    server.stop()
    journal.close()


def hand_off(config: Config, journal: Journal, server: OpcUaServer, anomalous: list[bool]) -> list[str]:
    """Results stored in the journal, handed off by the real Alerter through the observed outbox."""
    ids = [stored_result(journal, config, n, anomalous=a, part_id=f"P{n:04d}", lot="LOT42")
           for n, a in enumerate(anomalous)]
    alerter = Alerter(config, journal, FakeBroker(), outbox=ObservedOutbox(journal, server.committed))
    assert alerter.hand_off() == len(ids)
    return ids


class Events:
    """A subscription handler: the ResultReady events the PLC received."""

    def __init__(self) -> None:
        self.received: list[Any] = []

    def event_notification(self, event: Any) -> None:
        self.received.append(event)


def test_a_plc_reads_the_handshake_gets_events_and_acknowledges(setup: Any) -> None:
    config, journal, server, cert = setup

    async def plc_session() -> None:
        async with plc(config.opcua.endpoint, cert) as client:
            assert await read(client, f"{HS}.ResultReady") == 0
            server.status({"state": "running", "alarms": []})
            await wait_for_value(client, f"{HS}.Ready", True)
            events = Events()
            subscription = await client.create_subscription(50, events)
            vision = await node(client, "VisionSystem")
            index = await client.get_namespace_index("urn:batchsight:plant1:line-7:gw-1")
            event_type = await client.nodes.base_event_type.get_child(f"{index}:ResultReadyEventType")
            await subscription.subscribe_events(vision, event_type)
            ids = await asyncio.to_thread(hand_off, config, journal, server, [False, True])
            await wait_for_value(client, f"{HS}.ResultReady", 2)
            assert await read(client, f"{HS}.LastResultNG") is True
            assert await read(client, f"{HS}.LastResultOK") is False
            assert await read(client, f"{HS}.LastPartId") == "P0001"
            assert await read(client, f"{LAST}.ResultId") == ids[1]
            assert await read(client, f"{LAST}.Lot") == "LOT42"
            assert await read(client, f"{LAST}.IsAnomalous") is True
            assert await read(client, f"{LAST}.Confidence") == pytest.approx(0.9)
            assert await read(client, f"{HS}.ResultsPending") == 2
            assert await read(client, f"{HS}.Shift.Total") == 2
            assert await read(client, f"{HS}.Shift.NG") == 1
            await asyncio.wait_for(until(lambda: len(events.received) >= 2), 10)
            assert [e.PartId for e in events.received] == ["P0000", "P0001"]
            assert [e.ResultEvaluation for e in events.received] == [1, 2]
            await (await node(client, f"{HS}.ResultAck")).write_value(ua.Variant(2, ua.VariantType.UInt32))
            await wait_for_value(client, f"{HS}.ResultsPending", 0)
            results = await node(client, "VisionSystem.ResultManagement")
            by_id = await results.call_method(f"{index}:GetResultComponentsById", ids[0])
            assert by_id[0] == "P0000" and by_id[-1] == 0
            unknown = await results.call_method(f"{index}:GetResultComponentsById", "nope")
            assert unknown[-1] == 1
            last = await results.call_method(f"{index}:GetLastResults", ua.Variant(5, ua.VariantType.UInt32))
            assert last[0] == ids and last[1] == ["P0000", "P0001"]

    asyncio.run(plc_session())


async def until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.05)


async def wait_for_value(client: Any, path: str, value: Any, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while await read(client, path) != value:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


def test_sign_only_is_offered_too(setup: Any) -> None:
    config, _journal, _server, cert = setup

    async def session() -> None:
        async with plc(config.opcua.endpoint, cert, mode=ua.MessageSecurityMode.Sign) as client:
            assert await read(client, f"{HS}.ErrorCode") == 0

    asyncio.run(session())


def refused(coro: Any) -> BaseException:
    with pytest.raises(Exception) as caught:  # noqa: PT011 - asyncua raises several kinds for a refusal
        asyncio.run(coro)
    return caught.value


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("OPC UA client refused")]


def test_a_wrong_password_is_refused_with_one_clear_line(setup: Any, caplog: pytest.LogCaptureFixture) -> None:
    config, _journal, _server, cert = setup
    caplog.set_level(logging.INFO)

    async def session() -> None:
        async with plc(config.opcua.endpoint, cert, password="wrong"):
            pass

    refused(session())
    lines = refusals(caplog)
    assert len(lines) == 1, caplog.text
    assert "user 'plc'" in lines[0] and "wrong user name or password" in lines[0] and "opcua-users.txt" in lines[0]


def test_an_untrusted_certificate_is_refused_and_kept_for_review(setup: Any, tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    config, _journal, _server, _cert = setup
    caplog.set_level(logging.INFO)
    stranger = client_certificate(tmp_path / "stranger", "stranger")

    async def session() -> None:
        async with plc(config.opcua.endpoint, stranger):
            pass

    refused(session())
    lines = refusals(caplog)
    assert len(lines) == 1, caplog.text
    assert "stranger" in lines[0] and "not trusted" in lines[0] and "trusted/" in lines[0]
    rejected = list((config.work_folder / "opcua-pki" / "rejected").iterdir())
    assert len(rejected) == 1 and rejected[0].read_bytes() == stranger.cert.read_bytes()


def test_anonymous_and_unsecured_clients_are_refused_by_default(setup: Any, caplog: pytest.LogCaptureFixture) -> None:
    config, _journal, _server, cert = setup
    caplog.set_level(logging.INFO)

    async def anonymous() -> None:
        async with plc(config.opcua.endpoint, cert, user=None):
            pass

    async def unsecured() -> None:
        async with plc(config.opcua.endpoint, None):
            pass

    refused(anonymous())
    assert any("anonymous access is off" in line for line in refusals(caplog)), caplog.text
    refused(unsecured())


def test_a_new_endpoint_rebuilds_the_server_and_keeps_the_counts(setup: Any, tmp_path: Path) -> None:
    config, journal, server, cert = setup
    hand_off(config, journal, server, [False])
    wait_for(lambda: server.book.counter == 1, 10, "the result counted")
    moved = opcua_config(tmp_path, free_port())
    server.reconfigure(moved)
    wait_for(lambda: server.running.is_set() and server.config is moved, 30, "the server rebuilt")

    async def session() -> None:
        async with plc(moved.opcua.endpoint, cert) as client:
            assert await read(client, f"{HS}.ResultReady") == 1

    asyncio.run(session())


def test_the_server_certificate_is_made_once_and_kept(setup: Any) -> None:
    config, _journal, server, _cert = setup
    own = config.work_folder / "opcua-pki" / "own"
    first = (own / "cert.der").read_bytes()
    assert (own / "key.pem").stat().st_mode & 0o077 == 0, "the key is the component user's alone"
    server.stop()
    again = OpcUaServer(config, Journal(config.journal_path))
    again.start()
    assert again.running.wait(30), again.alarm
    again.stop()
    assert (own / "cert.der").read_bytes() == first


def test_a_result_older_than_the_ones_kept_is_read_from_the_journal(tmp_path: Path) -> None:
    config, journal, server, cert = started(tmp_path, results_kept=1)
    try:
        first, _second = hand_off(config, journal, server, [True, False])
        wait_for(lambda: server.book.counter == 2, 10, "both results counted")

        async def session() -> list[Any]:
            async with plc(config.opcua.endpoint, cert) as client:
                results = await node(client, "VisionSystem.ResultManagement")
                index = await client.get_namespace_index("urn:batchsight:plant1:line-7:gw-1")
                kept = await results.call_method(f"{index}:GetLastResults", ua.Variant(5, ua.VariantType.UInt32))
                assert len(kept[0]) == 1, "only opcua.results_kept results in memory"
                return list(await results.call_method(f"{index}:GetResultComponentsById", first))

        found = asyncio.run(session())
        assert found[0] == "P0000" and found[-1] == 0, "found in the journal"
        assert found[5] == 2, "ResultEvaluation NotOK: it was an alert"
    finally:
        server.stop()
        journal.close()


def test_the_address_space_is_the_one_docs_plant_floor_describes(setup: Any) -> None:
    config, _journal, _server, cert = setup
    guide = (Path(__file__).resolve().parents[2] / "docs" / "plant-floor.md").read_text()

    async def browse() -> set[str]:
        async with plc(config.opcua.endpoint, cert) as client:
            names: set[str] = set()

            async def walk(parent: Any, path: str) -> None:
                for child in await parent.get_children():
                    name = (await child.read_browse_name()).Name
                    names.add(f"{path}/{name}")
                    await walk(child, f"{path}/{name}")

            await walk(await node(client, "VisionSystem"), "VisionSystem")
            return names

    found = asyncio.run(browse())
    for leaf in ("PlcHandshake/ResultAck", "PlcHandshake/Shift/NotDecidable", "PlcHandshake/PreviousShift/OK",
                 "ResultManagement/LastResult/PartId", "ResultManagement/GetLastResults",
                 "ResultManagement/GetResultComponentsById", "VisionStateMachine/CurrentState",
                 "Identification/SoftwareRevision"):
        assert f"VisionSystem/{leaf}" in found
    variables = {name.rsplit("/", 1)[-1] for name in found if "/PlcHandshake/" in name or "/LastResult/" in name}
    assert [name for name in sorted(variables) if name not in guide] == [], "every tag a PLC reads is documented"
