"""The MQTT bridge mapping documented in docs/contracts.md against the topics the component's code
builds, in both topic layouts; and the recipe's local pub/sub policies against the same topics.

The kinds are read from the gateway's source, not typed here: every argument of a ``.topic(...)``
call (a literal, or the literals of the ``kinds`` a comprehension feeds it from), subscribed when
the call is the first argument of a ``.subscribe(...)``. The topics are then built by the real
``Config.topic`` for sample configurations of each layout.
"""
from __future__ import annotations

import ast
import json
import re

import pytest

from batchsight.config import Config, config_from_dict
from tests.gateway.config_support import minimal
from tests.gateway.test_greengrass_recipe import load_recipe, policies_for, policy_allows
from tests.support import REPO

PACKAGE = REPO / "component" / "batchsight"
CONTRACTS = REPO / "docs" / "contracts.md"
SECTION = "## On Greengrass: the MQTT bridge"
LAYOUTS = {"prefix": {}, "isa95": {"topic_layout": "isa95", "area": "paint"},
           "isa95 with a cell": {"topic_layout": "isa95", "area": "paint", "cell": "cell-3"}}


def _topic_calls(function: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(function) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == "topic" and len(n.args) == 1]


def _fed_from(function: ast.AST, name: str) -> set[str]:
    """The literal kinds a comprehension's ``name`` takes from a collection built in ``function``:
    the first item of each (kind, payload) tuple, or every item of a tuple of kinds."""
    kinds: set[str] = set()
    for loop in (n for n in ast.walk(function) if isinstance(n, ast.comprehension)):
        paired = isinstance(loop.target, ast.Tuple)
        first = loop.target.elts[0] if isinstance(loop.target, ast.Tuple) else loop.target
        if not (isinstance(first, ast.Name) and first.id == name and isinstance(loop.iter, ast.Name)):
            continue
        for node in ast.walk(function):
            built = ((isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == loop.iter.id
                                                             for t in node.targets))
                     or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                         and node.func.attr == "append" and isinstance(node.func.value, ast.Name)
                         and node.func.value.id == loop.iter.id))
            for item in (n for n in ast.walk(node) if built and isinstance(n, ast.Tuple)):
                values = [e.value for e in item.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                kinds.update(values[:1] if paired else values)
    return kinds


def _kinds(function: ast.AST, call: ast.Call) -> set[str]:
    arg = call.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return {arg.value}
    if isinstance(arg, ast.Name) and (found := _fed_from(function, arg.id)):
        return found
    raise AssertionError(f"line {call.lineno}: a topic kind this test cannot read; give it as a literal")


def code_kinds() -> tuple[set[str], set[str]]:
    """(published, subscribed) kinds, from every ``.topic(...)`` call of the gateway's code."""
    published: set[str] = set()
    subscribed: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        subscriptions = {id(n.args[0]) for n in ast.walk(tree) if isinstance(n, ast.Call) and n.args
                         and isinstance(n.func, ast.Attribute) and n.func.attr == "subscribe"}
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for call in _topic_calls(function):
                (subscribed if id(call) in subscriptions else published).update(_kinds(function, call))
    return published, subscribed


def documented_mappings() -> list[dict[str, dict[str, str]]]:
    section = CONTRACTS.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
    return [json.loads(block)["mqttTopicMapping"] for block in blocks if "mqttTopicMapping" in block]


def matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic filter matching: ``+`` one whole level, ``#`` (last) this level and all below."""
    levels, filters = topic.split("/"), topic_filter.split("/")
    for n, part in enumerate(filters):
        if part == "#":
            return n == len(filters) - 1
        if n >= len(levels) or (part != "+" and part != levels[n]):
            return False
    return len(levels) == len(filters)


def carried(mapping: dict[str, dict[str, str]], topic: str, source: str, target: str) -> bool:
    return any(e["source"] == source and e["target"] == target and matches(e["topic"], topic)
               for e in mapping.values())


def sample(layout: str) -> Config:
    return config_from_dict(minimal(site="plant1", line="line1", device="line1-gw", mqtt=LAYOUTS[layout]))


def test_the_kinds_are_read_from_the_code() -> None:
    published, subscribed = code_kinds()
    assert subscribed and published and not published & subscribed
    assert any("/" in kind for kind in published), "the two-level kind (feedback/response) must be found"


def test_mqtt_wildcards_match_as_the_specification_says() -> None:
    assert matches("a/+/c", "a/b/c") and not matches("a/+", "a/b/c") and not matches("a/+/c", "a/c")
    assert matches("a/#", "a/b/c") and matches("a/#", "a"), "'#' matches the parent level too"
    assert not matches("a/b", "a/b/c") and matches("#", "x/y")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_documented_mapping_carries_every_topic_of_the_layout_and_loops_none(layout: str) -> None:
    config, (published, subscribed) = sample(layout), code_kinds()
    outgoing, incoming = [config.topic(k) for k in published], [config.topic(k) for k in subscribed]
    covering = [m for m in documented_mappings()
                if all(carried(m, t, "Pubsub", "LocalMqtt") for t in outgoing)
                and all(carried(m, t, "LocalMqtt", "Pubsub") for t in incoming)]
    assert covering, f"no mapping in {CONTRACTS.name} carries all of {outgoing} out and {incoming} in"
    for mapping in documented_mappings():
        assert not [t for t in outgoing if carried(mapping, t, "LocalMqtt", "Pubsub")]
        assert not [t for t in incoming if carried(mapping, t, "Pubsub", "LocalMqtt")], "it would loop back"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_recipe_lets_the_component_publish_and_subscribe_them(layout: str) -> None:
    recipe, config, (published, subscribed) = load_recipe(), sample(layout), code_kinds()
    publish = policies_for(recipe, "aws.greengrass#PublishToTopic")
    subscribe = policies_for(recipe, "aws.greengrass#SubscribeToTopic")
    assert [k for k in published if not policy_allows(publish, config.topic(k))] == []
    assert [k for k in subscribed if not policy_allows(subscribe, config.topic(k))] == []


def test_the_mapping_names_only_real_directions() -> None:
    for mapping in documented_mappings():
        for name, entry in mapping.items():
            assert {entry["source"], entry["target"]} <= {"Pubsub", "LocalMqtt", "IotCore"}, name
            assert entry["source"] != entry["target"], name
