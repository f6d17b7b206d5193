"""From text to typed settings: the YAML file and the values in it, with errors a plant engineer
can act on.

Each error is one line that names the setting (and, for a file, its line) and says what to
write instead: YAML reads an unquoted ``5`` as a number and ``yes`` as true, a quoted ``"1883"``
stays text, and a mistyped or misplaced key would otherwise be silently ignored. config.py
holds the settings themselves and the checks of their values.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import MISSING, Field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says what is expected."""


_SETTING = re.compile(r"^(?:unknown )?setting ([^\s:;,]+)")
_KINDS = {str: "text", int: "a whole number", float: "a number", bool: "true or false"}


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a group of settings"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the text {value!r}"
    return repr(value)


def _expected(name: str, kind: Any) -> str:
    if kind is Path:
        return "a folder path"
    leaf = name.rsplit(".", 1)[-1]
    if kind in (int, float) and leaf.endswith("_seconds"):
        return "a number of seconds"
    if kind is int and leaf.endswith("_bytes"):
        return "a number of bytes (e.g. 6291456 for 6 MiB)"
    return _KINDS.get(kind, getattr(kind, "__name__", str(kind)))


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _advice(name: str, kind: Any, value: Any, default: Any) -> str:
    """What to write instead, for a value YAML read as the wrong type."""
    leaf = name.rsplit(".", 1)[-1]
    if value is None:
        keep = f" ({default})" if default not in (MISSING, "") else ""
        return f"write a value, or delete the line to keep the default{keep}"
    if name == "mqtt.protocol" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'write it in quotes, protocol: "5" or protocol: "3.1.1" (YAML reads an unquoted {value} as a number)'
    if kind is str and isinstance(value, bool):
        return (f'write it in quotes, {leaf}: "..." (YAML reads an unquoted yes, no, on, off, true or false '
                "as true or false)")
    if kind is str and isinstance(value, (int, float)):
        return f'write it in quotes, {leaf}: "{value}" (YAML reads it as a number)'
    if kind in (int, float) and isinstance(value, str) and _number(value.strip()):
        return f"remove the quotes, {leaf}: {value.strip()}"
    if kind is int and isinstance(value, float):
        return f"write a whole number, e.g. {leaf}: {round(value)}"
    if kind is bool:
        return f"write {leaf}: true or {leaf}: false, without quotes"
    if kind is Path:
        return f"write the full path of a folder, e.g. {leaf}: {default}"
    if kind in (int, float) and isinstance(value, str):
        return f"write a plain number without units, e.g. {leaf}: {default}" if default is not MISSING else \
            "write a plain number without units"
    return f"write one value, e.g. {leaf}: {default}" if default not in (MISSING, "") else \
        "write one value (the README's configuration table lists each setting)"


def convert(name: str, kind: Any, value: Any, default: Any = MISSING) -> Any:
    """Coerce one leaf value to its declared type, refusing anything ambiguous."""
    wrong = (value is None or (isinstance(value, bool) and kind is not bool)
             or (kind is Path and not (isinstance(value, str) and value)))
    if not wrong:
        if kind is Path:
            if value.startswith("~"):
                raise ConfigError(f"setting {name}: '~' is not expanded here: write the full path, "
                                  f"e.g. {name}: /var/lib/batchsight/{name.split('_')[0]}")
            return Path(value)
        if kind is float and isinstance(value, int):
            return float(value)
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)  # Greengrass hands numbers back as floats (500.0)
        if isinstance(value, kind):
            return value
    raise ConfigError(f"setting {name}: expected {_expected(name, kind)}, got {_shown(value)}: "
                      f"{_advice(name, kind, value, default)}")


def _all_names(cls: type, prefix: str = "") -> dict[str, str]:
    """Every setting's last name -> its dotted name, to say where a misplaced key belongs."""
    names: dict[str, str] = {}
    for f in fields(cls):
        kind = get_type_hints(cls)[f.name]
        if isinstance(kind, type) and is_dataclass(kind):
            names.update(_all_names(kind, f"{prefix}{f.name}."))
        names.setdefault(f.name, prefix + f.name)
    return names


def _unknown(key: Any, prefix: str, known: set[str], root: type) -> ConfigError:
    name = f"{prefix}{key}"
    elsewhere = _all_names(root).get(str(key))
    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    if elsewhere and elsewhere != name:
        group = elsewhere.rpartition(".")[0]
        hint = (f"it belongs under {group}: (indent it below that line)" if group
                else "it is a top-level setting: do not indent it")
    elif close:
        hint = f"did you mean {prefix}{close[0]}?"
    else:
        hint = "remove it or fix its spelling"
    return ConfigError(f"unknown setting {name}: {hint}; known: {', '.join(sorted(known))}")


def build(cls: type, data: Any, prefix: str = "", root: type | None = None) -> Any:
    """The dataclass ``cls`` from a mapping, nested groups included; an empty group (``mqtt:``
    with every line under it commented out) keeps its defaults."""
    root = root or cls
    name = prefix.rstrip(".") or "root"
    if data is None and prefix:
        data = {}
    if not isinstance(data, dict):
        if prefix:
            raise ConfigError(f"setting {name}: expected a group of settings (indented lines below "
                              f"'{name.rsplit('.', 1)[-1]}:'), got {_shown(data)}")
        raise ConfigError(f"setting root: expected a mapping of settings (key: value lines), got {_shown(data)}")
    hints = get_type_hints(cls)
    declared: dict[str, Field[Any]] = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(declared), key=str)  # YAML keys need not be strings
    if unknown:
        raise _unknown(unknown[0], prefix, set(declared), root)
    values = {}
    for key, value in data.items():
        kind = hints[key]
        if isinstance(kind, type) and is_dataclass(kind):
            values[key] = build(kind, value, f"{prefix}{key}.", root)
        else:
            declared_field = declared[key]
            default = declared_field.default
            if default is MISSING and declared_field.default_factory is not MISSING:
                default = declared_field.default_factory()
            values[key] = convert(prefix + key, kind, value, default)
    return cls(**values)


# --- the YAML file ---------------------------------------------------------------------------

def _syntax_hint(error: yaml.MarkedYAMLError) -> str:
    problem, context = error.problem or "", error.context or ""
    opened = f" on line {error.context_mark.line + 1}" if error.context_mark else ""
    if "'\\t'" in problem:
        return "a tab: YAML indents with spaces only, replace the tabs with spaces"
    if "mapping values are not allowed" in problem:
        return ("a ':' where no setting can start: put a value that holds ': ' in quotes, "
                "or line this up with the settings above it")
    if "quoted scalar" in context:
        return f"a quote opened{opened} is never closed: close it"
    if "flow sequence" in context or "flow mapping" in context:
        return f"a '[' or '{{' opened{opened} is never closed: close it, or put the value in quotes"
    if "expected <block end>" in problem or "could not find expected ':'" in problem:
        return ("the indentation does not match the lines above, or a line lacks 'key: value': "
                "indent every setting of a group by the same number of spaces")
    if "cannot start any token" in problem:
        return f"{problem}: put the value in quotes"
    return f"{context + ': ' if context else ''}{problem}: fix the YAML syntax there"


def _walk(node: yaml.Node, path: str, lines: dict[str, int], source: Path) -> None:
    """Record each key's line, and refuse a key given twice in one group (YAML keeps the last
    silently, so the first would be ignored)."""
    if not isinstance(node, yaml.MappingNode):
        return
    seen: dict[str, int] = {}
    for key, value in node.value:
        name = f"{path}{key.value}"
        line = key.start_mark.line + 1
        if key.value in seen:
            raise ConfigError(f"{source}, line {line}: {name} is given twice (also on "
                              f"line {seen[key.value]}): keep one")
        seen[key.value] = line
        lines[name] = line
        _walk(value, f"{name}.", lines, source)


def read_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """The file's data, and the line of each dotted setting name in it."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist: give the path of the YAML file "
                          "with --config FILE") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: it is a folder, give the YAML "
                          "file in it") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML: {_syntax_hint(exc)}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"configuration file {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not UTF-8 text (byte {exc.start}): save it as "
                          "UTF-8") from exc
    except OSError as exc:
        raise ConfigError(f"configuration file {path} cannot be read: {exc.strerror or exc}") from exc
    lines: dict[str, int] = {}
    if node is not None:
        _walk(node, "", lines, path)
    return data, lines


def located(error: ConfigError, path: Path, lines: dict[str, int]) -> ConfigError:
    """The same error, with the file and line of the setting it names (when the file has it)."""
    match = _SETTING.match(str(error))
    name = match.group(1) if match else ""
    while name and name not in lines:
        name = name.rpartition(".")[0]  # a missing leaf: the line of its group
    if not name:
        return ConfigError(f"{path}: {error}")
    return ConfigError(f"{path}, line {lines[name]}: {error}")
