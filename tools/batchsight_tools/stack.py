"""The cloud stack's sources as the tools see them: template, state machine, function code.

They are package data of ``batchsight_stack`` (the repository's ``cloud/`` folder), or any
folder of the same layout given explicitly (``BATCHSIGHT_CLOUD_DIR``), so the demo, the cost
model and the planner work from an installed wheel as well as from a checkout. A function's
handler is loaded from its own ``functions/<name>/app.py`` under a module name of its own,
as Lambda loads it from its code package, so the tools run exactly the deployed code.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
from pathlib import Path
from types import ModuleType

ENVIRONMENT_VARIABLE = "BATCHSIGHT_CLOUD_DIR"
_loaded: dict[Path, ModuleType] = {}
_lock = threading.Lock()


class StackNotFound(RuntimeError):
    """The cloud stack's sources are not installed and no folder was given."""


def cloud_dir() -> Path:
    """The folder holding template.yaml, statemachine/ and functions/."""
    explicit = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if explicit:
        folder = Path(explicit)
    else:
        spec = importlib.util.find_spec("batchsight_stack")
        if spec is None or spec.origin is None:
            raise StackNotFound("the cloud stack (package batchsight_stack) is not installed; "
                                f"pip install batchsight, or set {ENVIRONMENT_VARIABLE}")
        folder = Path(spec.origin).parent
    if not (folder / "template.yaml").is_file():
        raise StackNotFound(f"{folder} holds no template.yaml; set {ENVIRONMENT_VARIABLE} "
                            "to the folder of cloud/template.yaml")
    return folder


def template_path() -> Path:
    return cloud_dir() / "template.yaml"


def function_dir(code_uri: str) -> Path:
    """A function's code package, from its ``CodeUri`` in the template."""
    return cloud_dir() / code_uri


def load_function(code_uri: str, handler_module: str = "app") -> ModuleType:
    """The module of a function's handler, loaded once from its own code folder."""
    path = (function_dir(code_uri) / f"{handler_module}.py").resolve()
    with _lock:
        if path not in _loaded:
            name = "batchsight_function_" + path.parent.name
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise StackNotFound(f"no handler module at {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # dataclasses and pickling look modules up by name
            spec.loader.exec_module(module)
            _loaded[path] = module
        return _loaded[path]


def function(name: str) -> ModuleType:
    """The handler module of ``functions/<name>/`` (e.g. ``function("drain")``)."""
    return load_function(f"functions/{name}/")
