"""Read cloud/template.yaml as data, so the local stack is built from the deployed definitions.

moto's CloudFormation ignores the SAM transform and DefinitionSubstitutions, so the local
stack resolves the few intrinsic functions the template uses (Ref, GetAtt, Sub) itself.
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


def resolve(value: Any, lookup: Lookup) -> Any:
    """Resolve Ref/GetAtt/Sub with ``lookup(logical_id, attribute_or_None)``."""
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key == "Ref":
            return lookup(arg, None)
        if key == "Fn::GetAtt":
            return lookup(arg[0], arg[1])
        if key == "Fn::Sub":
            return re.sub(r"\$\{([^}]+)\}", lambda m: _sub(m.group(1), lookup), arg)
    if isinstance(value, dict):
        return {k: resolve(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, lookup) for v in value]
    return value


def _sub(expression: str, lookup: Lookup) -> str:
    logical, _, attribute = expression.partition(".")
    return lookup(logical, attribute or None)
