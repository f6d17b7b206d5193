"""Walk an Amazon States Language definition on the virtual clock.

The walker reads the project's real state machine (cloud/statemachine/batch_pipeline.asl.json)
and makes its decisions from the JSON: Choice rules, Wait seconds, Retry and Catch, which
Task comes next. Only the Tasks' work is simulated, by services keyed by the Lambda
function placeholder (``CheckWorkFunctionArn``) or the resource ARN. It supports exactly
what that definition uses, and refuses anything else loudly, so a new construct in the ASL
fails the cost model instead of being silently misread.
"""
from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
_PLACEHOLDER = re.compile(r"^\$\{(\w+)\}$")
_COMPARATORS = {
    "BooleanEquals": lambda value, expected: value is expected,
    "StringEquals": lambda value, expected: value == expected,
    "NumericGreaterThan": lambda value, expected: value > expected,
}


class UnsupportedAsl(NotImplementedError):
    """The definition uses a construct the walker does not model."""


class TaskFailed(Exception):
    """A simulated Task failed with a States error name (matched by Retry and Catch)."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


@dataclass
class Call:
    """What a simulated service answers: the function's output and how long the call took."""

    output: Any
    seconds: float


# A service takes the resolved payload (for a Map: all items' payloads) and answers with a Call,
# or with a generator that waits on the clock and returns the output.
Service = Callable[[Any], "Call | Generator[float, None, Any]"]


@dataclass
class Outcome:
    status: str  # SUCCEEDED or FAILED
    end_state: str
    error: str = ""
    output: Any = None
    path: list[tuple[float, str]] = field(default_factory=list)
    map_iterations: int = 0  # the states entered inside Map iterations
    retries: int = 0  # Task attempts after the first

    def visited(self, state: str) -> bool:
        return any(name == state for _, name in self.path)

    @property
    def transitions(self) -> int:
        """What Step Functions (Standard) bills: every state entered, in Map iterations too, and
        every retry of a Task."""
        return len(self.path) + self.map_iterations + self.retries


@dataclass
class _Counts:
    """An execution's billed steps that its path does not show (Map iterations, retries)."""

    map_iterations: int = 0
    retries: int = 0


@cache
def _path_parts(path: str) -> tuple[str, ...]:
    if path == "$":
        return ()
    if not path.startswith("$."):
        raise UnsupportedAsl(f"JSONPath {path!r}: only $.field.field paths are modelled")
    return tuple(path[2:].split("."))


def _get(document: Any, path: str) -> Any:
    value = document
    for part in _path_parts(path):
        if not isinstance(value, dict) or part not in value:
            raise TaskFailed("States.Runtime", f"path {path} not found")
        value = value[part]
    return value


def _put(document: Any, path: str | None, value: Any) -> Any:
    """A new document with ``value`` at ``path``; only the dicts on the path are copied (nothing
    mutates a document in place, so the rest can be shared with the previous state's)."""
    if path is None:
        return document
    if path == "$":
        return value
    result = dict(document) if isinstance(document, dict) else {}
    node = result
    parts = _get_parts(path)
    for part in parts[:-1]:
        child = node.get(part)
        node[part] = dict(child) if isinstance(child, dict) else {}
        node = node[part]
    node[parts[-1]] = value
    return result


def _get_parts(path: str) -> list[str]:
    if not path.startswith("$."):
        raise UnsupportedAsl(f"ResultPath {path!r}: only $.field paths are modelled")
    return path[2:].split(".")


class StateMachine:
    """One definition plus the services its Tasks call; ``run`` walks one execution."""

    def __init__(self, definition: Mapping[str, Any], services: Mapping[str, Service], *,
                 rng: random.Random, clock: Callable[[], float]) -> None:
        self.definition = definition
        self.services = services
        self.rng = rng
        self.clock = clock
        self._templates: dict[int, list[tuple[str, str, Any]]] = {}

    def run(self, execution_input: Any, *, name: str) -> Generator[float, None, Outcome]:
        context = {"Execution": {"Id": f"arn:aws:states:sim:execution:batchsight:{name}",
                                 "Name": name, "Input": copy.deepcopy(execution_input)}}
        data = copy.deepcopy(execution_input)
        current = self.definition["StartAt"]
        path: list[tuple[float, str]] = []
        counts = _Counts()
        while True:
            path.append((self.clock(), current))
            state = self.definition["States"][current]
            try:
                step = yield from self._step(current, state, data, context, counts)
            except TaskFailed as failure:  # a runtime error outside a Task: the execution fails
                step = Outcome("FAILED", current, error=failure.error, output=data)
            if isinstance(step, Outcome):
                step.path, step.map_iterations, step.retries = path, counts.map_iterations, counts.retries
                return step
            current, data = step

    def _step(self, name: str, state: Mapping[str, Any], data: Any, context: Mapping[str, Any],
              counts: _Counts) -> Generator[float, None, Outcome | tuple[str, Any]]:
        """Run one state; the next state's name and the data, or the execution's outcome."""
        kind = state["Type"]
        if kind == "Succeed":
            return Outcome("SUCCEEDED", name, output=data)
        if kind == "Fail":
            return Outcome("FAILED", name, error=state.get("Error", ""), output=data)
        if kind == "Choice":
            return self._choose(state, data), data
        if kind == "Wait":
            yield float(state["Seconds"] if "Seconds" in state else _get(data, state["SecondsPath"]))
            return state["Next"], data
        if kind == "Pass":
            result = (self._resolve(state["Parameters"], data, context)
                      if "Parameters" in state else state.get("Result", data))
            return state["Next"], _put(data, state.get("ResultPath", "$"), result)
        if kind not in ("Task", "Map"):
            raise UnsupportedAsl(f"state {name}: type {kind} is not modelled")
        output = yield from self._call_with_retry(state, data, context, counts)
        if isinstance(output, TaskFailed):
            catcher = self._catcher(state, output.error)
            if catcher is None:
                return Outcome("FAILED", name, error=output.error, output=data)
            error = {"Error": output.error, "Cause": output.cause}
            return catcher["Next"], _put(data, catcher.get("ResultPath", "$"), error)
        data = _put(data, state.get("ResultPath", "$"), output)
        if state.get("End"):
            return Outcome("SUCCEEDED", name, output=data)
        return state["Next"], data

    # --- Choice -------------------------------------------------------------------------------

    def _choose(self, state: Mapping[str, Any], data: Any) -> str:
        for rule in state["Choices"]:
            operators = [k for k in rule if k not in ("Variable", "Next")]
            if len(operators) != 1 or operators[0] not in _COMPARATORS:
                raise UnsupportedAsl(f"Choice rule {rule}: only {', '.join(_COMPARATORS)} are modelled")
            operator = operators[0]
            try:
                value = _get(data, rule["Variable"])
            except TaskFailed:
                continue  # a missing variable does not match
            if _COMPARATORS[operator](value, rule[operator]):
                return str(rule["Next"])
        if "Default" not in state:
            raise TaskFailed("States.NoChoiceMatched", "no Choice rule matched and no Default")
        return str(state["Default"])

    # --- Task and Map ---------------------------------------------------------------------------

    def _call_with_retry(self, state: Mapping[str, Any], data: Any, context: Mapping[str, Any],
                         counts: _Counts) -> Generator[float, None, Any]:
        attempts: dict[int, int] = {}
        while True:
            try:
                return (yield from self._invoke(state, data, context, counts))
            except TaskFailed as failure:
                index, retrier = self._retrier(state, failure.error)
                if retrier is None or attempts.get(index, 0) >= retrier.get("MaxAttempts", 3):
                    return failure
                n = attempts.get(index, 0)
                attempts[index] = n + 1
                counts.retries += 1
                delay = retrier.get("IntervalSeconds", 1) * retrier.get("BackoffRate", 2.0) ** n
                delay = min(delay, retrier.get("MaxDelaySeconds", delay))
                if retrier.get("JitterStrategy") == "FULL":
                    delay = self.rng.uniform(0, delay)
                yield delay

    def _invoke(self, state: Mapping[str, Any], data: Any, context: Mapping[str, Any],
                counts: _Counts) -> Generator[float, None, Any]:
        """Call the state's service; any exception it raises is a States error named by its class."""
        try:
            if state["Type"] == "Map":
                return (yield from self._map(state, data, context, counts))
            return (yield from self._task(state, data, context))
        except (TaskFailed, UnsupportedAsl):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. ModelBusy, LockLost: matched by name
            raise TaskFailed(type(exc).__name__, str(exc)) from exc

    def _run(self, key: str, payload: Any) -> Generator[float, None, Any]:
        """A service answers at once (a Call) or is itself a process on the clock (a generator)."""
        answer = self._service(key)(payload)
        if isinstance(answer, Call):
            yield answer.seconds
            return answer.output
        return (yield from answer)

    def _task(self, state: Mapping[str, Any], data: Any,
              context: Mapping[str, Any]) -> Generator[float, None, Any]:
        key, payload = self._target(state, data, context)
        output = yield from self._run(key, payload)
        return self._select(state, output)

    def _map(self, state: Mapping[str, Any], data: Any, context: Mapping[str, Any],
             counts: _Counts) -> Generator[float, None, Any]:
        processor = state["ItemProcessor"]
        inner = processor["States"][processor["StartAt"]]
        caught = {c["Next"] for c in inner.get("Catch", [])}
        others = [s for name, s in processor["States"].items() if name != processor["StartAt"]]
        if (inner["Type"] != "Task" or not inner.get("End") or len(others) != len(caught)
                or any(s["Type"] != "Pass" or not s.get("End") for s in others)
                or not caught <= set(processor["States"])):
            raise UnsupportedAsl("Map: only a processor of one Task state (and Pass states it catches to) is modelled")
        items = _get(data, state["ItemsPath"])
        if not items:
            return []
        counts.map_iterations += len(items)  # one Task state per item (the simulated drain never fails)
        limit = state.get("MaxConcurrency", 0) or len(items)
        payloads = []
        for item in items:
            item_context = {**context, "Map": {"Item": {"Value": item}}}
            item_input = self._resolve(state["ItemSelector"], data, item_context)
            key, payload = self._target(inner, item_input, item_context)
            payloads.append(payload)
        # The items run concurrently: one service call gets them all and answers for each.
        outputs = yield from self._run("Map:" + key, {"items": payloads, "max_concurrency": limit})
        return [self._select(inner, output) for output in outputs]

    def _target(self, state: Mapping[str, Any], data: Any,
                context: Mapping[str, Any]) -> tuple[str, Any]:
        parameters = self._resolve(state.get("Parameters", {}), data, context)
        if state["Resource"] == LAMBDA_INVOKE:
            match = _PLACEHOLDER.match(str(state["Parameters"]["FunctionName"]))
            if not match:
                raise UnsupportedAsl(f"FunctionName {state['Parameters']['FunctionName']!r}")
            return match.group(1), parameters.get("Payload", {})
        return str(state["Resource"]), parameters

    def _service(self, key: str) -> Service:
        if key not in self.services:
            raise UnsupportedAsl(f"no simulated service for {key}")
        return self.services[key]

    def _select(self, state: Mapping[str, Any], output: Any) -> Any:
        """ResultSelector over the Lambda invoke result shape ({"Payload": output})."""
        if "ResultSelector" not in state:
            return output
        wrapped = {"Payload": output} if state["Resource"] == LAMBDA_INVOKE else output
        return self._resolve(state["ResultSelector"], wrapped, {})

    def _resolve(self, template: Any, data: Any, context: Mapping[str, Any]) -> Any:
        if isinstance(template, list):
            return [self._resolve(v, data, context) for v in template]
        if not isinstance(template, dict):
            return template
        result: dict[str, Any] = {}
        for key, kind, value in self._compiled(template):
            if kind == "value":
                result[key] = self._resolve(value, data, context)
            elif kind == "context":
                result[key] = _get(context, value)
            elif kind == "intrinsic":
                result[key] = value
            else:
                result[key] = _get(data, value)
        return result

    def _compiled(self, template: dict[str, Any]) -> list[tuple[str, str, Any]]:
        """A Parameters (or selector) template read once: each field's name, what kind of value it
        takes (a literal, a path into the context, an intrinsic, a path into the data) and from where.
        The definition's templates live as long as the machine, so their ids are stable keys."""
        compiled = self._templates.get(id(template))
        if compiled is None:
            compiled = []
            for key, value in template.items():
                if not key.endswith(".$"):
                    compiled.append((key, "value", value))
                elif value.startswith("$$."):
                    compiled.append((key[:-2], "context", "$." + value[3:]))
                elif value.startswith("States."):  # intrinsics only feed notifications
                    compiled.append((key[:-2], "intrinsic", f"<{value.split('(')[0]}>"))
                else:
                    compiled.append((key[:-2], "data", value))
            self._templates[id(template)] = compiled
        return compiled

    # --- Retry and Catch -------------------------------------------------------------------------

    @staticmethod
    def _matches(errors: list[str], error: str) -> bool:
        return error in errors or "States.ALL" in errors

    def _retrier(self, state: Mapping[str, Any], error: str) -> tuple[int, Mapping[str, Any] | None]:
        for index, retrier in enumerate(state.get("Retry", [])):
            if self._matches(retrier["ErrorEquals"], error):
                return index, retrier
        return -1, None

    def _catcher(self, state: Mapping[str, Any], error: str) -> Mapping[str, Any] | None:
        for catcher in state.get("Catch", []):
            if self._matches(catcher["ErrorEquals"], error):
                return catcher
        return None
