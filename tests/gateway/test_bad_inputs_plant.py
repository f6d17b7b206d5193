"""The plant-floor settings (opcua.*, sparkplug.*, part.*, the ISA-95 topic layout) as a plant
engineer mistypes them: each a real `batchsight` process (tests/bad_inputs.py), one line on stderr
that names the setting and says what to write, no traceback, exit 2."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs import BadInput, check
from tests.gateway.test_bad_inputs_gateway import CONFIG, edge

CASES = [
    BadInput("run: part.file_pattern not a regular expression", ["run", *CONFIG], 2,
             r"line 13: setting part\.file_pattern: not a regular expression .*write one like \(\?P<lot>",
             edge("part:\n  file_pattern: '(?P<part_id>P\\d+'\n")),
    BadInput("doctor: part.file_pattern without named groups", ["doctor", *CONFIG], 2,
             r"setting part\.file_pattern: name the groups, \(\?P<part_id>\.\.\.\) and/or \(\?P<lot>\.\.\.\)",
             edge("part:\n  file_pattern: 'P\\d+'\n")),
    BadInput("run: opcua.endpoint with a port out of range", ["run", *CONFIG], 2,
             r"setting opcua\.endpoint: expected a URL like opc\.tcp://0\.0\.0\.0:4840/batchsight, got "
             r"'opc\.tcp://0\.0\.0\.0:70000/x'", edge("opcua:\n  endpoint: opc.tcp://0.0.0.0:70000/x\n")),
    BadInput("status: opcua.endpoint over http", ["status", *CONFIG], 2, r"setting opcua\.endpoint: expected a URL",
             edge("opcua:\n  endpoint: http://gw:4840\n")),
    BadInput("run: an unknown security policy", ["run", *CONFIG], 2,
             r"setting opcua\.security: write a comma-separated list of None, Basic256Sha256_Sign, .*got "
             r"'Basic256Sha256'", edge("opcua:\n  security: Basic256Sha256\n")),
    BadInput("doctor: the users file is missing", ["doctor", *CONFIG], 2,
             r"setting opcua\.users_file: file \S+/users\.txt does not exist; write one 'name:password' per line",
             edge("opcua:\n  users_file: '{tmp}/users.txt'\n")),
    BadInput("run: a users file without passwords", ["run", *CONFIG], 2,
             r"setting opcua\.users_file: write one 'name:password' per line in \S+/users\.txt \(entry 1 is not\)",
             {**edge("opcua:\n  users_file: '{tmp}/users.txt'\n"), "users.txt": "plc\n"}),
    BadInput("run: a relative pki folder", ["run", *CONFIG], 2,
             r"setting opcua\.pki_folder: write an absolute path, got 'pki'", edge("opcua:\n  pki_folder: pki\n")),
    BadInput("status: a shift time with a dot", ["status", *CONFIG], 2,
             r"setting opcua\.shifts: write the shift start times as HH:MM, comma-separated",
             edge("opcua:\n  shifts: '06.00,14:00'\n")),
    BadInput("run: results_kept zero", ["run", *CONFIG], 2, r"setting opcua\.results_kept: must be",
             edge("opcua:\n  results_kept: 0\n")),
    BadInput("run: a Sparkplug id with a slash", ["run", *CONFIG], 2,
             r"setting sparkplug\.group_id: 1 to 128 characters without '/', '\+', '#' or spaces, got 'a/b'",
             edge("sparkplug:\n  group_id: a/b\n")),
    BadInput("doctor: an unknown topic layout", ["doctor", *CONFIG], 2,
             r"setting mqtt\.topic_layout: must be one of prefix, isa95, got 'isa'",
             edge("mqtt:\n  topic_layout: isa\n")),
    BadInput("run: isa95 without an area", ["run", *CONFIG], 2,
             r"setting mqtt\.area: the isa95 layout needs the area", edge("mqtt:\n  topic_layout: isa95\n")),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(case: BadInput, tmp_path: Path) -> None:
    check(case, tmp_path)
