"""cloud_errors.py: which AWS errors only a person can fix, on errors in the shapes botocore
raises for the real services (the codes and messages AWS documents for each)."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from batchsight.cloud_errors import refusal


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": 403}}, operation)


@pytest.mark.parametrize("code,message,operation,fix", [
    ("RequestTimeTooSkewed", "The difference between the request time and the current time is too large.",
     "PutObject", "clock"),
    ("InvalidSignatureException", "Signature expired: 20261124T040000Z is now earlier than 20261124T060000Z",
     "StartExecution", "clock"),
    ("ExpiredToken", "The provided token has expired.", "PutObject", "credentials"),
    ("InvalidClientTokenId", "The security token included in the request is invalid.", "SendMessageBatch",
     "credentials"),
    ("AccessDenied", "Access Denied", "PutObject", "permission"),
    ("AccessDeniedException", "User is not authorized to perform: states:StartExecution", "StartExecution",
     "permission"),
    ("NoSuchBucket", "The specified bucket does not exist", "PutObject", "does not exist"),
    ("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.", "SendMessageBatch",
     "does not exist"),
    ("StateMachineDoesNotExist", "State Machine Does Not Exist", "StartExecution", "does not exist"),
])
def test_a_refusal_says_what_to_fix(code: str, message: str, operation: str, fix: str) -> None:
    alarm = refusal(client_error(code, message, operation))
    assert alarm is not None and alarm.startswith(f"AWS refuses {operation} ({code}): ") and fix in alarm


@pytest.mark.parametrize("exc", [
    client_error("SlowDown", "Please reduce your request rate.", "PutObject"),
    client_error("ThrottlingException", "Rate exceeded", "StartExecution"),
    client_error("InternalError", "We encountered an internal error. Please try again.", "PutObject"),
    EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com"),
    TimeoutError("read timed out"),
])
def test_what_retrying_cures_raises_no_alarm(exc: BaseException) -> None:
    assert refusal(exc) is None


def test_no_credentials_at_all() -> None:
    alarm = refusal(NoCredentialsError())
    assert alarm is not None and "TokenExchangeService" in alarm
