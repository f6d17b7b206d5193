"""Run the stack's Lambda handlers in-process inside moto server.

moto runs Lambda code only in Docker; this replaces that one method so that Step Functions'
``lambda:invoke`` calls the real handler with the function's environment and a Lambda-like
context. Errors come back the way Lambda reports them, so Retry and Catch in the ASL match.
"""
from __future__ import annotations

import json
import os
import threading
import time
import traceback
import uuid
from typing import TYPE_CHECKING, Any

from batchsight_tools.stack import load_function

if TYPE_CHECKING:
    from moto.awslambda.models import LambdaFunction

_env_lock = threading.Lock()
_owned: set[str] = set()  # environment variables a function has set
_updating: set[str] = set()  # variables a stack update is changing, function by function
_code: dict[str, tuple[str, str]] = {}  # function name -> (CodeUri, Handler)


def register(function_name: str, *, code_uri: str, handler: str) -> None:
    """Where a function's code is, as the template says (its CodeUri and Handler)."""
    _code[function_name] = (code_uri, handler)


class LambdaContext:
    """The parts of the Lambda context object that our handlers and Powertools read."""

    def __init__(self, function: LambdaFunction) -> None:
        self.function_name = function.function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = function.function_arn
        self.memory_limit_in_mb = int(function.memory_size)
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + float(function.timeout)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _apply_environment(variables: dict[str, str]) -> None:
    """Functions share one process: their environments must agree (the template's Globals)."""
    with _env_lock:
        for name, value in variables.items():
            current = os.environ.get(name)
            if current is not None and current != str(value) and name in _owned and name not in _updating:
                raise RuntimeError(f"functions disagree on {name}: {current!r} vs {value!r}")
            os.environ[name] = str(value)
            _owned.add(name)


def updating(names: set[str]) -> None:
    """A stack update starts changing these variables one function at a time
    (``LocalCloud.update_environment``): until ``forget``, a function invoked meanwhile may carry
    the old value or the new one, as during a real stack update, and neither is a disagreement."""
    with _env_lock:
        _updating.update(names)


def forget(names: set[str]) -> None:
    """Let the functions set these variables anew: every function's value changed together (the
    end of a stack update)."""
    with _env_lock:
        _owned.difference_update(names)
        _updating.difference_update(names)


def invoke_in_process(self: LambdaFunction,
                      event: str | bytes | dict[str, Any] | None = None) -> tuple[str, bool, str]:
    """Replacement for ``moto.awslambda.models.LambdaFunction._invoke_lambda``.

    It becomes that method, so its parameters are the method's, names included: moto passes
    ``event=`` by keyword. moto annotates ``event`` as ``str | None``, but its Step Functions
    executor passes the state's input as a dict, hence the wider type.
    """
    _apply_environment(dict(self.environment_vars))
    code_uri, handler_name = _code[self.function_name]
    module_name, _, attr = handler_name.rpartition(".")
    try:
        handler = getattr(load_function(code_uri, module_name), attr)
        payload = json.loads(event) if isinstance(event, (str, bytes)) else (event or {})
        result = handler(payload, LambdaContext(self))
        return json.dumps(result), False, ""
    except Exception as exc:  # noqa: BLE001 - reported to Step Functions like Lambda does
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc),
                 "stackTrace": traceback.format_exc().splitlines()[-5:]}
        return json.dumps(error), True, traceback.format_exc()


def install() -> None:
    """Patch moto once per process."""
    from moto.awslambda.models import LambdaFunction

    # Replacing a method on the class is the point here; mypy flags every assignment to a method.
    LambdaFunction._invoke_lambda = invoke_in_process  # type: ignore[method-assign]
