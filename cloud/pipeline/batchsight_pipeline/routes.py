"""Model routes: many models on one stack, each with its own queue, lock and backend.

A plant's lines inspect different products, and each product needs its own model. A *route* is
one model as the pipeline serves it: the gateways of its lines name it (``aws.model`` in their
configuration, ``route`` in the execution input), enqueue into its queue, and every execution
works for exactly one route. The stack's own model, configured by the template's parameters,
is the route ``default``; every other route is one SSM parameter under ``MODEL_ROUTES_PATH``
(``/batchsight/{stack}/models/{route}``), a JSON object of settings laid over the stack's
(``environment.overlay``): its ``QUEUE_URL``, ``MODEL_BACKEND``, ``MODEL_NAME``, endpoint and
rates. A route is added with ``batchsight model route`` and no template change; why SSM and not
the template: a site grows by models far more often than it redeploys.

Why each route has its own queue and lock (``lock.lock_id``): an execution drains what its
model judges, so starting model A never waits for model B's drain, and one model's poison
messages or failed start stop nobody else.
"""
from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from batchsight_pipeline.aws import client
from batchsight_pipeline.environment import SettingsError, optional, overlay, required

__all__ = ["DEFAULT", "STACK_WIDE", "current", "forget", "lock_id", "names", "parameter_name", "route_of", "serving",
           "settings_of"]

DEFAULT = "default"
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# Settings of the stack as a whole, never a route's: its buckets, dead-letter queue, lock table,
# result queues and the route registry itself.
STACK_WIDE = frozenset({"SOURCE_BUCKET", "FINAL_BUCKET", "MODEL_BUCKET", "DEAD_LETTER_QUEUE_URL", "LOCK_TABLE",
                        "LOCK_LEASE_SECONDS", "RESULT_QUEUE_PREFIX", "MODEL_ROUTES_PATH", "MODEL_ROUTE",
                        "HANDOVER_EVENTS", "MAX_RECEIVE_COUNT",
                        "LOOKOUTVISION_PROJECT"})  # the roles name the stack's project
CACHE_SECONDS = 60.0  # a changed route reaches warm functions within a minute
_cache: dict[str, tuple[float, dict[str, str]]] = {}
_cache_lock = threading.Lock()


def route_of(event: Mapping[str, Any]) -> str:
    """The route an event works for: the execution input's ``route`` (``default`` when absent)."""
    execution_input = event.get("input") or {}
    name = str(execution_input.get("route") or event.get("route") or DEFAULT)
    if not NAME.match(name):
        raise SettingsError(f"model route {name!r} is not a route name: 1-40 lower-case letters, digits and "
                            "hyphens, starting with a letter or digit")
    return name


def current() -> str:
    """The route being served (``serving`` sets it); ``default`` outside any."""
    return optional("MODEL_ROUTE") or DEFAULT


def lock_id(route: str) -> str:
    """The lock item's key; the default route keeps the single-model stack's key."""
    return "model" if route == DEFAULT else f"model:{route}"


def parameter_name(route: str) -> str:
    return f"{required('MODEL_ROUTES_PATH').rstrip('/')}/{route}"


def settings_of(route: str) -> dict[str, str]:
    """The route's own settings (none for ``default``), read once a minute per warm function."""
    if route == DEFAULT:
        return {}
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(route)
    if cached and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    values = _read(route)
    with _cache_lock:
        _cache[route] = (now, values)
    return values


def forget() -> None:
    """Read every route's parameter again at its next use (a warm process of the local emulator,
    whose routes a test has just removed)."""
    with _cache_lock:
        _cache.clear()


@contextmanager
def serving(event: Mapping[str, Any]) -> Iterator[str]:
    """Within the block, every setting is the event's route's; yields the route's name."""
    route = route_of(event)
    with overlay({**settings_of(route), "MODEL_ROUTE": route}):
        yield route


def names() -> list[str]:
    """Every route of the stack: ``default`` and one per parameter under MODEL_ROUTES_PATH."""
    path = optional("MODEL_ROUTES_PATH").rstrip("/")
    found = [DEFAULT]
    if not path:
        return found
    for page in client("ssm").get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=False):
        found.extend(item["Name"].rsplit("/", 1)[-1] for item in page.get("Parameters", []))
    return found


def parse(route: str, text: str) -> dict[str, str]:
    """A route parameter's JSON as settings; names what is wrong and how to mend it."""
    where = f"model route {route!r} ({parameter_name(route)})"
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{where} is not JSON ({exc}); write it again with `batchsight model route`") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{where} must be a JSON object of settings; write it again with `batchsight model route`")
    shared = sorted(STACK_WIDE.intersection(document))
    if shared:
        raise SettingsError(f"{where} sets {', '.join(shared)}, which belong to the whole stack; remove them")
    if not str(document.get("QUEUE_URL", "")).strip():
        raise SettingsError(f"{where} has no QUEUE_URL: every route has its own queue; "
                            "create it with `batchsight model route`")
    values = {str(key): str(value) for key, value in document.items()}
    _check_scope(where, values)
    return values


def _check_scope(where: str, values: Mapping[str, str]) -> None:
    """A route stays inside what the stack's roles allow (cloud/template.yaml): the stack's kind of
    backend, and SageMaker names that extend the stack's (``{name}-{anything}``)."""
    kind = optional("MODEL_BACKEND")
    if values.get("MODEL_BACKEND", kind) != kind:
        raise SettingsError(f"{where} uses MODEL_BACKEND {values['MODEL_BACKEND']!r}, but the stack's roles are made "
                            f"for {kind!r}: use {kind!r}, or deploy a second stack for the other kind")
    for name in ("SAGEMAKER_ENDPOINT_NAME", "SAGEMAKER_ENDPOINT_CONFIG_NAME"):
        stack_value = optional(name)
        if name in values and not values[name].startswith(f"{stack_value}-"):
            raise SettingsError(f"{where} sets {name}={values[name]!r}: the stack's roles allow only names that "
                                f"start with {stack_value + '-'!r}; rename it so")


def _read(route: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        text = client("ssm").get_parameter(Name=parameter_name(route))["Parameter"]["Value"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ParameterNotFound":
            raise SettingsError(f"model route {route!r} does not exist ({parameter_name(route)}); add it with "
                                "`batchsight model route`, or set the gateway's aws.model to an existing one") from exc
        raise
    return parse(route, text)
