"""The gateway's commands (`batchsight run|status|doctor`) on what a plant engineer mistypes:
each a real process (tests/bad_inputs.py), one line on stderr that says what to do, no traceback,
exit 2 for a wrong argument or configuration value and 1 for what the user did not cause."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_inputs import BadInput, check

BASE = """\
site: plant1
line: line-7
device: gw-1
drop_folder: {tmp}/drop
work_folder: {tmp}/work
aws:
  source_bucket: src
  final_bucket: final
  queue_url: http://127.0.0.1:9/123456789012/q
  state_machine_arn: arn:aws:states:us-east-1:123456789012:stateMachine:m
  endpoint_url: http://127.0.0.1:9
"""
CONFIG = ["--config", "{tmp}/edge.yaml"]


def edge(extra: str = "", base: str = BASE) -> dict[str, str | bytes]:
    """The files of a case: edge.yaml holding the base configuration plus ``extra``."""
    return {"edge.yaml": base + extra}


CASES = [
    BadInput("run: mqtt.protocol unquoted", ["run", *CONFIG], 2,
             r'edge\.yaml, line 13: setting mqtt\.protocol: .*write it in quotes, protocol: "5"',
             edge("mqtt:\n  protocol: 5\n")),
    BadInput("status: mqtt.protocol 3.1 as a number", ["status", *CONFIG], 2, r'protocol: "3\.1\.1"',
             edge("mqtt:\n  protocol: 3.1\n")),
    BadInput("doctor: a YAML syntax error", ["doctor", *CONFIG], 2,
             r"^configuration error: \S+/edge\.yaml, line 14, column 1: not valid YAML: a '\[' or '\{' opened on "
             r"line 13 is never closed", edge("mqtt:\n  port: [1883\n")),
    BadInput("run: indented with a tab", ["run", *CONFIG], 2, r"line 13, column 1: .*replace the tabs with spaces",
             edge("mqtt:\n\tport: 1883\n")),
    BadInput("status: a group given twice", ["status", *CONFIG], 2, r"line 14: mqtt is given twice \(also on line 12\)",
             edge("mqtt:\n  port: 1884\nmqtt:\n  host: broker\n")),
    BadInput("doctor: a mistyped key", ["doctor", *CONFIG], 2,
             r"unknown setting mqtt\.hostname: did you mean mqtt\.host\?", edge("mqtt:\n  hostname: broker\n")),
    BadInput("run: a key outside its group", ["run", *CONFIG], 2,
             r"unknown setting region: it belongs under aws: \(indent it below that line\)",
             edge("region: eu-west-1\n")),
    BadInput("status: a number in quotes", ["status", *CONFIG], 2,
             r"setting mqtt\.port: expected a whole number, got the text '1883': remove the quotes, port: 1883",
             edge("mqtt:\n  port: '1883'\n")),
    BadInput("doctor: seconds with a unit", ["doctor", *CONFIG], 2,
             r"setting batch\.interval_seconds: expected a number of seconds, got the text '1h': write a plain "
             r"number without units", edge("batch:\n  interval_seconds: 1h\n")),
    BadInput("run: a negative batch size", ["run", *CONFIG], 2,
             r"line 13: setting batch\.max_images: must be greater than 0, got -5", edge("batch:\n  max_images: -5\n")),
    BadInput("status: true in quotes", ["status", *CONFIG], 2, r"setting mqtt\.tls: .*tls: true or tls: false",
             edge("mqtt:\n  tls: 'true'\n")),
    BadInput("doctor: a line number read as a number", ["doctor", *CONFIG], 2,
             r'setting line: expected text, got 7: write it in quotes, line: "7"',
             edge(base=BASE.replace("line-7", "7"))),
    BadInput("run: a setting with no value", ["run", *CONFIG], 2,
             r"setting device: expected text, got nothing: write a value, or delete the line",
             edge(base=BASE.replace("gw-1", ""))),
    BadInput("run: the drop folder is a file", ["run", *CONFIG], 2,
             r"setting drop_folder: \S+/drop is a file, not a folder: point drop_folder at a folder",
             {**edge(), "drop": "not a folder"}),
    BadInput("run: the work folder is below a file", ["run", *CONFIG], 2,
             r"setting work_folder: \S+/work cannot be created: \S+/base is a file",
             {**edge(base=BASE.replace("{tmp}/work", "{tmp}/base/work")), "base": "a file"}),
    BadInput("status: a cloud setting missing", ["status", *CONFIG], 2,
             r"line 6: setting aws\.source_bucket is empty: copy it from the cloud stack's outputs",
             edge(base=BASE.replace("  source_bucket: src\n", ""))),
    BadInput("doctor: no such configuration file", ["doctor", "--config", "{tmp}/none.yaml"], 2,
             r"none\.yaml does not exist: give the path of the YAML file with --config FILE"),
    BadInput("status: the configuration is a folder", ["status", "--config", "{tmp}/conf"], 2,
             r"conf cannot be read: it is a folder", {"conf/edge.yaml": BASE}),
    BadInput("run: no configuration given", ["run"], 2, r"give --config FILE \(or --greengrass"),
    BadInput("doctor: --greengrass off a device", ["doctor", "--greengrass"], 2,
             r"Greengrass IPC is not reachable and BATCHSIGHT_CONFIG is not set"),
    BadInput("status: a file that is not UTF-8", ["status", *CONFIG], 2, r"is not UTF-8 text .*save it as UTF-8",
             {"edge.yaml": (BASE + "site: caf\u00e9\n").encode("latin-1")}),
    BadInput("doctor: a list, not settings", ["doctor", *CONFIG], 2,
             r"setting root: expected a mapping of settings", {"edge.yaml": "- site: a\n- line: b\n"}),
    BadInput("doctor: a region that is no region", ["doctor", *CONFIG], 2,
             r"line 7: setting aws\.region: 'eu west 1' is not an AWS region name: .*e\.g\. region: eu-west-1",
             edge(base=BASE.replace("aws:\n", "aws:\n  region: eu west 1\n"))),
    BadInput("run: a mistyped option", ["run", "--conifg", "{tmp}/edge.yaml"], 2,
             r"unrecognized arguments: --conifg", edge()),
    BadInput("status: before the component ever ran", ["status", *CONFIG], 1,
             r"^batchsight status: no journal at \S+/journal\.sqlite3: the component has not run", edge()),
    BadInput("status: a journal that is not SQLite", ["status", *CONFIG], 1,
             r"cannot read the journal \S+ \(file is not a database\)",
             {**edge(), "work/journal.sqlite3": b"this is not a journal\n" * 200}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input(case: BadInput, tmp_path: Path) -> None:
    check(case, tmp_path)


@pytest.mark.parametrize("command", ["run", "status", "doctor"])
def test_each_command_says_what_it_does_and_each_option_what_it_is(command: str) -> None:
    """`batchsight COMMAND --help`: a description, and a help text naming the default for every option."""
    import argparse

    from batchsight.cli import _parser

    [subcommands] = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    parser = subcommands.choices[command]
    assert parser.description and len(parser.description) > 100 and "`" not in parser.description
    options = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert {o for a in options for o in a.option_strings} >= {"--config", "--greengrass"}
    for action in options:
        assert action.help and ("default" in action.help or "required" in action.help), action.option_strings
