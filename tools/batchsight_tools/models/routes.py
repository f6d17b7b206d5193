"""`batchsight model route` and `model routes`: another model on the same stack, and the list of them.

A route (the cloud's ``batchsight_pipeline.routes``) is one SSM parameter under the stack's
``ModelRoutesPath`` and one queue, ``{stack}-work-{route}``. The queue is made like the stack's
own (the stack output ImageQueueUrl): its visibility timeout, retention, encryption and
dead-letter queue are copied from it, and it refuses requests without TLS as the stack's do.
Adding a route changes no template and restarts nothing: the pipeline reads the parameter at
the route's next execution, and the gateways of the new model's lines name it in ``aws.model``.
The route's queue gets a copy of the stack's ``{stack}-backlog-too-old`` alarm (its threshold and
actions), watching that queue: an image waiting too long on any model says so.
"""
from __future__ import annotations

import argparse
import json
import re
from typing import Any

from batchsight_pipeline.routes import DEFAULT, NAME, STACK_WIDE
from batchsight_tools.models.arguments import Clients, UsageError, add_aws, error_code

COPIED = ("VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy", "SqsManagedSseEnabled")
PATH = re.compile(r"^/batchsight/([A-Za-z][A-Za-z0-9-]{0,127})/models$")
SETTING = re.compile(r"^([A-Z][A-Z0-9_]{0,63})=(.*)$")
# What a route's backlog alarm takes from the stack's (DescribeAlarms' fields that PutMetricAlarm takes)
ALARM_COPIED = ("ActionsEnabled", "AlarmActions", "OKActions", "InsufficientDataActions", "ComparisonOperator",
                "Threshold", "EvaluationPeriods", "DatapointsToAlarm", "TreatMissingData")
QUERY_KEYS = ("Id", "MetricStat", "Expression", "Label", "ReturnData", "Period")


def route_name(text: str) -> str:
    if not NAME.match(text) or text == DEFAULT:
        raise argparse.ArgumentTypeError(f"{text!r} is not a route name: 1-40 lower-case letters, digits and '-', "
                                         f"not {DEFAULT!r} (the stack's own model)")
    return text


def routes_path(text: str) -> str:
    if not PATH.match(text.rstrip("/")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a routes path: give the stack output ModelRoutesPath, "
                                         "/batchsight/STACK/models")
    return text.rstrip("/")


def setting(text: str) -> tuple[str, str]:
    match = SETTING.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (a pipeline setting, e.g. MODEL_NAME=pcb)")
    if match.group(1) in STACK_WIDE or match.group(1) == "QUEUE_URL":
        raise argparse.ArgumentTypeError(f"{match.group(1)} belongs to the whole stack (or to the route's own "
                                         "queue, made here); a route cannot set it")
    return match.group(1), match.group(2)


def add_parsers(sub: Any) -> None:
    """The two subcommands, on `batchsight model`'s parser."""
    route = sub.add_parser("route", help="add or change a model route: another model on the same stack",
                           description="Make the route's queue (like the stack's own) and write its settings; "
                                       "the gateways of its lines set aws.model to its name.")
    route.add_argument("route", type=route_name,
                       help="the route's name, as the gateways' aws.model names it (required)")
    _add_stack(route)
    route.add_argument("--set", dest="settings", type=setting, action="append", default=[], metavar="NAME=VALUE",
                       help="a setting of the route's model, laid over the stack's: MODEL_NAME (the lambda "
                            "backend's package), SAGEMAKER_ENDPOINT_NAME, DETECT_TPS, ... (repeatable; default: none, "
                            "the stack's settings)")
    listing = sub.add_parser("routes", help="the stack's model routes, their settings and waiting images",
                             description="Every model route of the stack, its settings and its queue's depth.")
    _add_stack(listing)


def _add_stack(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--routes-path", required=True, type=routes_path,
                        help="the stack output ModelRoutesPath, /batchsight/STACK/models (required)")
    parser.add_argument("--queue-url", required=True,
                        help="the stack output ImageQueueUrl: the default route's queue, which new ones copy "
                             "(required)")
    add_aws(parser)


def route(args: argparse.Namespace, clients: Clients) -> int:
    """Create (or keep) the route's queue, then write its parameter: never a route without its queue."""
    sqs, ssm = clients.client("sqs"), clients.client("ssm")
    stack = _stack(args.routes_path)
    url = _queue(sqs, args.queue_url, f"{stack}-work-{args.route}")
    values = {**dict(args.settings), "QUEUE_URL": url}
    name = f"{args.routes_path}/{args.route}"
    ssm.put_parameter(Name=name, Value=json.dumps(values, sort_keys=True), Type="String", Overwrite=True,
                      Description=f"batchsight model route {args.route}")
    print(f"route {args.route}: {name} = {json.dumps(values, sort_keys=True)}")
    print(f"  its lines' gateways: aws.model: {args.route} and aws.queue_url: {url}; the pipeline serves it from "
          "its next execution (warm functions within a minute)")
    print(f"  {_backlog_alarm(clients.client('cloudwatch'), stack, args.route)}")
    return 0


def list_routes(args: argparse.Namespace, clients: Clients) -> int:
    sqs, ssm = clients.client("sqs"), clients.client("ssm")
    rows = [(DEFAULT, {"QUEUE_URL": args.queue_url, "(the stack's own model)": "template parameters"})]
    for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=args.routes_path):
        for item in page.get("Parameters", []):
            rows.append((item["Name"].rsplit("/", 1)[-1], _settings(item)))
    states = _alarm_states(clients.client("cloudwatch"), _stack(args.routes_path), [name for name, _ in rows])
    print(f"{'route':20}  {'waiting':>7}  {'backlog alarm':17}  settings")
    for name, values in rows:
        print(f"{name:20}  {_waiting(sqs, values.get('QUEUE_URL', '')):>7}  {states.get(name, 'none'):17}  "
              + ", ".join(f"{key}={value}" for key, value in sorted(values.items()) if key != "QUEUE_URL"))
    return 0


def _alarm_states(cloudwatch: Any, stack: str, routes: list[str]) -> dict[str, str]:
    """Each route's backlog alarm state (OK, ALARM, INSUFFICIENT_DATA); a route without one is left out."""
    names = {backlog_alarm_name(stack, route): route for route in routes}
    found: dict[str, str] = {}
    for start in range(0, len(names), 100):  # DescribeAlarms takes 100 names at a time
        chunk = list(names)[start:start + 100]
        for alarm in cloudwatch.describe_alarms(AlarmNames=chunk)["MetricAlarms"]:
            found[names[alarm["AlarmName"]]] = alarm["StateValue"]
    return found


def _stack(path: str) -> str:
    match = PATH.match(path)
    assert match is not None  # routes_path checked it
    return match.group(1)


def _queue(sqs: Any, stack_queue_url: str, name: str) -> str:
    """The route's queue, made with the stack queue's attributes, or given them when it exists."""
    from botocore.exceptions import ClientError

    try:
        attributes = sqs.get_queue_attributes(QueueUrl=stack_queue_url, AttributeNames=["All"])["Attributes"]
    except ClientError as exc:
        if error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise UsageError(f"--queue-url {stack_queue_url}: no such queue; give the stack output "
                             "ImageQueueUrl") from exc
        raise
    arn = attributes["QueueArn"].rsplit(":", 1)[0] + f":{name}"
    copied = {key: attributes[key] for key in COPIED if key in attributes}
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "sqs:*", "Resource": arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    wanted = {**copied, "Policy": json.dumps(policy)}
    try:
        return str(sqs.create_queue(QueueName=name, Attributes=wanted)["QueueUrl"])
    except ClientError as exc:
        if error_code(exc) not in ("QueueAlreadyExists", "QueueNameExists"):
            raise
    url = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
    sqs.set_queue_attributes(QueueUrl=url, Attributes=wanted)  # the stack's queue changed since: follow it
    return url


def backlog_alarm_name(stack: str, route: str = DEFAULT) -> str:
    """The stack's BacklogTooOldAlarm (template AlarmName), and each route's copy of it."""
    return f"{stack}-backlog-too-old" + ("" if route == DEFAULT else f"-{route}")


def _backlog_alarm(cloudwatch: Any, stack: str, route: str) -> str:
    """Copy the stack's backlog alarm onto the route's queue; one line that says what was done."""
    found = cloudwatch.describe_alarms(AlarmNames=[backlog_alarm_name(stack)])["MetricAlarms"]
    if not found:
        return (f"no alarm {backlog_alarm_name(stack)} in the stack to copy (a stack deployed before it had a "
                "name): deploy the current template, then run this command again to give the route its alarm")
    stack_alarm, queue = found[0], f"{stack}-work-{route}"
    metrics = [_on_queue(query, queue) for query in stack_alarm["Metrics"]]
    copied = {key: stack_alarm[key] for key in ALARM_COPIED if key in stack_alarm}
    name = backlog_alarm_name(stack, route)
    cloudwatch.put_metric_alarm(AlarmName=name, Metrics=metrics, **copied, AlarmDescription=(
        f"batchsight model route {route}: an image has waited in its queue {queue} longer than the stack's "
        f"backlog alarm allows ({stack_alarm['Threshold']:g} minutes); check its executions and its model"))
    return f"alarm {name}: the queue's oldest image older than {stack_alarm['Threshold']:g} minutes, as the stack's"


def _on_queue(query: dict[str, Any], queue: str) -> dict[str, Any]:
    """One metric query of the stack's alarm, its QueueName dimension set to the route's queue."""
    query = {key: value for key, value in query.items() if key in QUERY_KEYS}
    if "MetricStat" in query:
        metric = query["MetricStat"]["Metric"]
        metric["Dimensions"] = [{**d, "Value": queue} if d["Name"] == "QueueName" else d
                                for d in metric.get("Dimensions", [])]
    return query


def _settings(item: dict[str, Any]) -> dict[str, str]:
    try:
        values = json.loads(item["Value"])
    except ValueError:
        return {"(not JSON)": "write it again with `batchsight model route`"}
    return {str(key): str(value) for key, value in values.items()} if isinstance(values, dict) else {}


def _waiting(sqs: Any, url: str) -> str:
    if not url:
        return "-"
    try:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    except Exception:  # noqa: BLE001 - a queue gone or not ours: the list goes on
        return "?"
    return str(attributes["Attributes"]["ApproximateNumberOfMessages"])
