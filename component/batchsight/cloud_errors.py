"""What an AWS error means at the gateway: retrying cures a network outage, throttling or a
service hiccup, but never a wrong clock, missing credentials or permissions, or a resource name
that does not exist. Those get an alarm on the status topic that says what to fix, so an HMI
does not just show an unreachable cloud while the link is fine; doctor words its checks with
the same fixes.
"""
from __future__ import annotations

import os

CLOCK = ("the gateway's clock is more than 5 minutes off AWS's: set the time and keep it with "
         "NTP (batchsight doctor shows the offset)")
# Where a gateway's credentials come from, on Greengrass and off it.
TOKEN_EXCHANGE = ("on Greengrass the token exchange service gives them: keep the recipe's dependency on "
                  "aws.greengrass.TokenExchangeService, and check that the nucleus's iotRoleAlias names a "
                  "role alias for the token exchange role")
CREDENTIALS_CHAIN = ("off Greengrass the AWS credentials chain gives them: AWS_ACCESS_KEY_ID and "
                     "AWS_SECRET_ACCESS_KEY in the environment, a profile in ~/.aws/credentials of the user "
                     "running the component (AWS_PROFILE picks one), or an instance role")
PERMISSION = ("the credentials lack a permission: give the device role the policy of the "
              "stack output EdgeDevicePolicyArn")
_RESOURCE = ("a bucket, queue or state machine the configuration names does not exist: compare "
             "aws.* with the stack outputs (batchsight doctor says which)")
_KINDS = {
    "RequestTimeTooSkewed": "clock",
    "ExpiredToken": "credentials", "ExpiredTokenException": "credentials",
    "InvalidAccessKeyId": "credentials", "InvalidClientTokenId": "credentials",
    "UnrecognizedClientException": "credentials", "SignatureDoesNotMatch": "credentials",
    "InvalidSignatureException": "credentials", "InvalidToken": "credentials",
    "AccessDenied": "permission", "AccessDeniedException": "permission",
    "NoSuchBucket": "resource", "AWS.SimpleQueueService.NonExistentQueue": "resource",
    "QueueDoesNotExist": "resource", "StateMachineDoesNotExist": "resource",
}
_FIXES = {"clock": CLOCK, "permission": PERMISSION, "resource": _RESOURCE}


def on_greengrass() -> bool:
    """Whether this process runs as a Greengrass component (the nucleus sets these for it)."""
    return any(name in os.environ for name in ("SVCUID", "AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT"))


def credentials_fix(greengrass: bool | None) -> str:
    """Where to get credentials from: the token exchange service, the AWS chain, or (unknown) both."""
    if greengrass is None:
        return f"{TOKEN_EXCHANGE}; {CREDENTIALS_CHAIN}"
    return TOKEN_EXCHANGE if greengrass else CREDENTIALS_CHAIN


def kind(exc: BaseException) -> str | None:
    """"clock", "credentials", "permission" or "resource" for an error only a person can fix;
    None for one that retrying cures."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return "credentials"
    if not isinstance(exc, ClientError):
        return None
    error = exc.response.get("Error", {})
    if "Signature expired" in str(error.get("Message", "")):
        return "clock"
    return _KINDS.get(str(error.get("Code", "")))


def refusal(exc: BaseException) -> str | None:
    """An alarm for an error only a person can fix; None for one that retrying cures."""
    from botocore.exceptions import ClientError, NoCredentialsError

    found = kind(exc)
    if found is None:
        return None
    where = credentials_fix(True if on_greengrass() else None)  # off a device the gateway may still be one
    if isinstance(exc, NoCredentialsError):
        return f"no AWS credentials: {where}"
    assert isinstance(exc, ClientError)
    code = str(exc.response.get("Error", {}).get("Code", ""))
    fix = f"the credentials are missing, expired or wrong: {where}" if found == "credentials" else _FIXES[found]
    return f"AWS refuses {exc.operation_name} ({code}): {fix}"
