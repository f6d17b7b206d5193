"""Read cloud/template.yaml as data, so the local stack is built from the deployed definitions.

moto's CloudFormation ignores the SAM transform and DefinitionSubstitutions, so the local
stack resolves the few intrinsic functions the template uses itself: Ref, GetAtt and Sub, and
the template's Conditions (Equals, Not, And, Or, a Condition by name) for If and for a
resource's own ``Condition``; ``Ref AWS::NoValue`` drops the item or property it stands for,
as CloudFormation does.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from batchsight_tools.stack import template_path


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags as their long-form dicts."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # YAML has no fourth kind of node
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{tag_suffix}", node.start_mark)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path | None = None) -> dict[str, Any]:
    """The template as data; by default the installed stack's (``batchsight_tools.stack``)."""
    return yaml.load((path or template_path()).read_text(), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


Lookup = Callable[[str, str | None], str]
Condition = Callable[[str], bool]
_NO_VALUE = object()  # Ref AWS::NoValue: the element is left out


def resolve(value: Any, lookup: Lookup, condition: Condition | None = None) -> Any:
    """Resolve Ref/GetAtt/Sub with ``lookup(logical_id, attribute_or_None)``, and Fn::If with
    ``condition(name)``; an element that resolves to AWS::NoValue is left out."""
    resolved = _resolve(value, lookup, condition)
    return None if resolved is _NO_VALUE else resolved


def _resolve(value: Any, lookup: Lookup, condition: Condition | None) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return _NO_VALUE if arg == "AWS::NoValue" else lookup(arg, None)
        if key == "Fn::GetAtt":
            return lookup(arg[0], arg[1])
        if key == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: _sub(m.group(1), lookup), arg)
        if key == "Fn::If":
            if condition is None:
                raise ValueError(f"Fn::If {arg[0]} needs the template's conditions")
            return _resolve(arg[1] if condition(arg[0]) else arg[2], lookup, condition)
    if isinstance(value, dict):
        items = ((k, _resolve(v, lookup, condition)) for k, v in value.items())
        return {k: v for k, v in items if v is not _NO_VALUE}
    if isinstance(value, list):
        return [v for v in (_resolve(v, lookup, condition) for v in value) if v is not _NO_VALUE]
    return value


def evaluate_condition(expression: Any, lookup: Lookup, conditions: dict[str, Any]) -> bool:
    """A template condition (Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition) as a bool."""
    (key, arg), = expression.items()
    if key == "Condition":
        return evaluate_condition(conditions[arg], lookup, conditions)
    if key == "Fn::Equals":
        left, right = (resolve(side, lookup) for side in arg)
        return str(left) == str(right)
    parts = [evaluate_condition(part, lookup, conditions) for part in arg]
    if key == "Fn::Not":
        return not parts[0]
    if key == "Fn::And":
        return all(parts)
    if key == "Fn::Or":
        return any(parts)
    raise ValueError(f"condition function {key} is not supported by the local stack")


def _sub(expression: str, lookup: Lookup) -> str:
    if expression.startswith("!"):  # ${!Literal}: written as ${Literal} (an IAM policy variable)
        return "${" + expression[1:] + "}"
    logical, _, attribute = expression.partition(".")
    return lookup(logical, attribute or None)
