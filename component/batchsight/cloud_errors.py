"""What an AWS error means at the gateway: retrying cures a network outage, throttling or a
service hiccup, but never a wrong clock, missing credentials or permissions, or a resource name
that does not exist. Those get an alarm on the status topic that says what to fix, so an HMI
does not just show an unreachable cloud while the link is fine.
"""
from __future__ import annotations

_CLOCK = ("the gateway's clock is more than 5 minutes off AWS's: set the time and keep it with "
          "NTP (batchsight doctor shows the offset)")
_CREDENTIALS = ("the credentials are missing, expired or wrong: on Greengrass check the token "
                "exchange role and the TokenExchangeService dependency")
_PERMISSION = ("the credentials lack a permission: give the device role the policy of the "
               "stack output EdgeDevicePolicyArn")
_RESOURCE = ("a bucket, queue or state machine the configuration names does not exist: compare "
             "aws.* with the stack outputs (batchsight doctor says which)")
_FIXES = {
    "RequestTimeTooSkewed": _CLOCK,
    "ExpiredToken": _CREDENTIALS, "ExpiredTokenException": _CREDENTIALS,
    "InvalidAccessKeyId": _CREDENTIALS, "InvalidClientTokenId": _CREDENTIALS,
    "UnrecognizedClientException": _CREDENTIALS, "SignatureDoesNotMatch": _CREDENTIALS,
    "InvalidSignatureException": _CREDENTIALS,
    "AccessDenied": _PERMISSION, "AccessDeniedException": _PERMISSION,
    "NoSuchBucket": _RESOURCE, "AWS.SimpleQueueService.NonExistentQueue": _RESOURCE,
    "QueueDoesNotExist": _RESOURCE, "StateMachineDoesNotExist": _RESOURCE,
}


def refusal(exc: BaseException) -> str | None:
    """An alarm for an error only a person can fix; None for one that retrying cures."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return f"no AWS credentials: {_CREDENTIALS}"
    if not isinstance(exc, ClientError):
        return None
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    fix = _CLOCK if "Signature expired" in message else _FIXES.get(code)
    if fix is None:
        return None
    return f"AWS refuses {exc.operation_name} ({code}): {fix}"
