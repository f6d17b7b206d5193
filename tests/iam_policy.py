"""The IAM rules the edge device policy relies on, evaluated here, because no emulator does.

moto's IAM enforcement (``INITIAL_NO_AUTH_ACTION_COUNT``, moto 5.2) matches an object's resource,
but fills in no policy variable (the literal ``${credentials-iot:ThingName}`` matches no key, so it
refuses even the gateway's own upload), hands no condition keys to the statements (a ListBucket of
any prefix, or of the whole bucket, passes), and no request can reach it as a thing of the AWS IoT
credentials provider. So the policy is judged by this evaluator, which keeps to what AWS documents:

- the policy variable is replaced by the caller's value before anything is matched;
- ``*`` in an action or resource matches any characters, ``/`` included, ``?`` exactly one;
- a condition on a key the request does not carry does not hold (no ``...IfExists`` here);
- an explicit Deny wins; without an Allow the request is refused.

And the requests: botocore's parameters of an S3, SQS or Step Functions call, turned into the
action, resource and condition keys IAM authorises that call with (the Service Authorization
Reference: HeadObject is ``s3:GetObject``, ListObjectsV2 and HeadBucket ``s3:ListBucket``,
SendMessageBatch ``sqs:SendMessage``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_VARIABLE = re.compile(r"\$\{([^}]+)\}")
_S3_OBJECT_ACTIONS = {"PutObject": "s3:PutObject", "GetObject": "s3:GetObject", "HeadObject": "s3:GetObject"}
_SQS_ACTIONS = {"SendMessage": "sqs:SendMessage", "SendMessageBatch": "sqs:SendMessage",
                "GetQueueAttributes": "sqs:GetQueueAttributes", "SetQueueAttributes": "sqs:SetQueueAttributes",
                "CreateQueue": "sqs:CreateQueue", "GetQueueUrl": "sqs:GetQueueUrl",
                "ReceiveMessage": "sqs:ReceiveMessage", "DeleteMessage": "sqs:DeleteMessage",
                "DeleteMessageBatch": "sqs:DeleteMessage"}


@dataclass(frozen=True)
class Request:
    """What IAM is asked: may this action be done on this resource, with these condition keys."""

    action: str
    resource: str
    context: dict[str, str] = field(default_factory=dict)


def substitute(document: Any, variables: dict[str, str]) -> Any:
    """The policy with every ``${variable}`` replaced; an unknown one is an error, not a match."""
    if isinstance(document, dict):
        return {k: substitute(v, variables) for k, v in document.items()}
    if isinstance(document, list):
        return [substitute(v, variables) for v in document]
    if isinstance(document, str):
        return _VARIABLE.sub(lambda m: variables[m.group(1)], document)
    return document


def allowed(document: dict[str, Any], request: Request) -> bool:
    statements = document["Statement"]
    matching = [s for s in (statements if isinstance(statements, list) else [statements]) if _applies(s, request)]
    return any(s["Effect"] == "Allow" for s in matching) and not any(s["Effect"] == "Deny" for s in matching)


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _glob(pattern: str, value: str, *, case: bool = True) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, 0 if case else re.IGNORECASE) is not None


def _applies(statement: dict[str, Any], request: Request) -> bool:
    return (any(_glob(a, request.action, case=False) for a in _listed(statement["Action"]))
            and any(_glob(r, request.resource) for r in _listed(statement["Resource"]))
            and _conditions_hold(statement.get("Condition", {}), request.context))


def _conditions_hold(conditions: dict[str, dict[str, Any]], context: dict[str, str]) -> bool:
    for operator, tests in conditions.items():
        for key, values in tests.items():
            if key not in context:
                return False
            if operator == "StringLike":
                held = any(_glob(v, context[key]) for v in _listed(values))
            elif operator == "StringEquals":
                held = context[key] in _listed(values)
            else:
                raise ValueError(f"condition operator {operator} is not evaluated here: add it")
            if not held:
                return False
    return True


def request_of(service: str, operation: str, params: dict[str, Any], *, region: str, account: str) -> Request:
    """The IAM request behind one botocore call (only the operations the gateway makes)."""
    if service == "s3":
        bucket = f"arn:aws:s3:::{params['Bucket']}"
        if operation in ("ListObjectsV2", "ListObjects"):
            return Request("s3:ListBucket", bucket, {"s3:prefix": params["Prefix"]} if "Prefix" in params else {})
        if operation == "HeadBucket":
            return Request("s3:ListBucket", bucket)
        return Request(_S3_OBJECT_ACTIONS[operation], f"{bucket}/{params['Key']}")
    if service == "sqs":
        name = params.get("QueueName") or params["QueueUrl"].rstrip("/").rsplit("/", 1)[1]
        return Request(_SQS_ACTIONS[operation], f"arn:aws:sqs:{region}:{account}:{name}")
    if service == "sfn":
        return Request(f"states:{operation}", params["stateMachineArn"])
    raise ValueError(f"{service}:{operation} is not a call of the gateway's: add its IAM action")
