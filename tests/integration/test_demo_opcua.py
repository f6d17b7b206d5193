"""`batchsight demo --opcua`: the gateway's OPC UA server switched on, its endpoint and login
printed for a person's own client, and the handshake read at the end as a PLC reads it."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.test_demo import SMALL, passed, run_demo

pytestmark = pytest.mark.integration


def test_the_demo_prints_the_endpoint_and_a_plc_reads_every_result(tmp_path: Path) -> None:
    output = passed(run_demo(tmp_path, *SMALL, "--count", "8", "--opcua"))
    assert re.search(r"^  OPC UA server at opc\.tcp://127\.0\.0\.1:\d+/batchsight \(docs/plant-floor\.md\): "
                     r"user plc, password \S+;$", output, re.M), output
    assert re.search(r"^  OPC UA: a PLC read PlcHandshake over Basic256Sha256 SignAndEncrypt: ResultReady 8, "
                     r"LastPartId part_\d+, LastResultNG (True|False), Ready True$", output, re.M), output
