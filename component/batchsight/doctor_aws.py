"""doctor's AWS checks, in the order their causes go: can the endpoints be reached at all (an
unsigned request, which needs no credentials), is the clock right (the Date header of that
answer), are there credentials and does AWS take them, and only then the resources.

The endpoints and the clock are checked without credentials, so a gateway with neither a
network nor credentials hears about both; a resource check that one of them makes
meaningless is skipped, naming it.
"""
from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from batchsight import cloud_errors
from batchsight.config import Config
from batchsight.doctor_checks import Check, failed, passed, skipped, warned
from batchsight.push_receiver import QUEUE_ATTRIBUTES

# AWS refuses a request signed more than 5 minutes off its own clock (RequestTimeTooSkewed):
# to the component that looks like an unreachable cloud.
SIGNATURE_SKEW_SECONDS = 300.0
PROBE_TIMEOUT_SECONDS = 5


def clock_offset(date_header: str, local: float) -> float:
    """AWS's clock minus ours in seconds, from an HTTP Date header (whole seconds)."""
    return email.utils.parsedate_to_datetime(date_header).timestamp() - local


def unreachable(exc: BaseException) -> bool:
    """The request never got an HTTP answer: DNS, refused, timed out, TLS, proxy."""
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, BotoConnectionError | HTTPClientError)


def why_unreachable(exc: BaseException) -> str:
    from botocore.exceptions import ConnectTimeoutError, ProxyConnectionError, ReadTimeoutError, SSLError

    text = str(getattr(exc, "kwargs", {}).get("error", exc))
    if isinstance(exc, ProxyConnectionError):
        return f"the proxy {exc.kwargs.get('proxy_url')} cannot be reached"
    if isinstance(exc, SSLError):
        return "TLS failed (a proxy that intercepts TLS needs its CA in AWS_CA_BUNDLE)"
    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError) or "timed out" in text:
        return f"no answer within {PROBE_TIMEOUT_SECONDS} s (a firewall drops it, or there is no route)"
    if "refused" in text:
        return "connection refused (nothing listens there)"
    if any(s in text for s in ("not known", "resolution", "getaddrinfo", "nodename nor servname")):
        return "the name does not resolve (DNS)"
    if "unreachable" in text or "No route" in text:
        return "no route to it"
    return text


def _network_fix(config: Config) -> str:
    if config.aws.endpoint_url:
        return f"check aws.endpoint_url ({config.aws.endpoint_url}) and that the service there runs"
    return ("check the gateway's network: DNS, a route out (or VPC endpoints), outbound HTTPS (443) through "
            "the firewall, and HTTPS_PROXY if the plant needs a proxy")


def unsigned_copy(client: Any) -> Any:
    """The same service at the same endpoint, sending unsigned requests: they need no
    credentials, and any HTTP answer, a refusal included, shows the endpoint can be reached.
    One attempt with short timeouts, so an unreachable endpoint is told at once."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config as BotoConfig

    config = client.meta.config.merge(BotoConfig(signature_version=UNSIGNED, retries={"total_max_attempts": 1},
                                                 connect_timeout=PROBE_TIMEOUT_SECONDS,
                                                 read_timeout=PROBE_TIMEOUT_SECONDS))
    session = boto3.session.Session(region_name=client.meta.region_name)
    return session.client(client.meta.service_model.service_name, endpoint_url=client.meta.endpoint_url,
                          config=config)


@dataclass
class Link:
    """What the unsigned probes found: the endpoints that could not be reached and why, and
    the clock offset from S3's answer."""

    endpoints: dict[str, list[str]] = field(default_factory=dict)   # endpoint -> services
    failures: dict[str, str] = field(default_factory=dict)          # endpoint -> why
    clock_offset: float | None = None                               # AWS's clock minus ours, seconds

    def blocked(self, service: str) -> str | None:
        for endpoint, services in self.endpoints.items():
            if service in services and endpoint in self.failures:
                return f"{endpoint} cannot be reached (see aws endpoints)"
        return None


_PROBES: dict[str, Callable[[Config, Any], Any]] = {
    "s3": lambda config, s3: s3.head_bucket(Bucket=config.aws.source_bucket),
    "sqs": lambda config, sqs: sqs.get_queue_attributes(QueueUrl=config.aws.queue_url, AttributeNames=["QueueArn"]),
    "stepfunctions": lambda config, sfn: sfn.describe_state_machine(stateMachineArn=config.aws.state_machine_arn),
}


def _probe(config: Config, service: str, client: Any) -> tuple[str | None, float | None]:
    """Why the endpoint cannot be reached (None when it answered), and AWS's clock minus ours
    from the answer's Date header (an error answer has one too)."""
    from botocore.exceptions import ClientError

    sent = time.time()
    try:
        metadata = _PROBES[service](config, unsigned_copy(client))["ResponseMetadata"]
    except ClientError as exc:
        metadata = exc.response.get("ResponseMetadata", {})
    except Exception as exc:  # noqa: BLE001 - anything but no answer at all: the signed checks say more
        return (why_unreachable(exc) if unreachable(exc) else None), None
    date = metadata.get("HTTPHeaders", {}).get("date")
    return None, (clock_offset(date, (sent + time.time()) / 2) if date else None)


def probe(config: Config, clients: dict[str, Any]) -> Link:
    """One unsigned request to each distinct endpoint, all at once (a dropped connection costs
    its timeout once, not once per endpoint)."""
    link = Link()
    for service in ("s3", "sqs", "stepfunctions"):
        link.endpoints.setdefault(clients[service].meta.endpoint_url, []).append(service)
    with ThreadPoolExecutor(len(link.endpoints)) as pool:
        answers = {endpoint: pool.submit(_probe, config, services[0], clients[services[0]])
                   for endpoint, services in link.endpoints.items()}
    for endpoint, answer in answers.items():
        why, offset = answer.result()
        if why:
            link.failures[endpoint] = why
        if link.endpoints[endpoint][0] == "s3":
            link.clock_offset = offset
    return link


def endpoints_check(config: Config, link: Link) -> Check:
    if not link.failures:
        return passed("aws endpoints", "answer: " + ", ".join(f"{endpoint} ({', '.join(services)})"
                                                              for endpoint, services in link.endpoints.items()))
    causes: dict[str, list[str]] = {}
    for endpoint, why in link.failures.items():
        causes.setdefault(why, []).append(f"{endpoint} ({', '.join(link.endpoints[endpoint])})")
    found = "; ".join(f"{', '.join(endpoints)}: {why}" for why, endpoints in causes.items())
    return failed("aws endpoints", f"cannot reach {found}; {_network_fix(config)}")


def clock_check(link: Link) -> Check:
    blocked = link.blocked("s3")
    if blocked:
        return skipped("clock", blocked)
    if link.clock_offset is None:
        return failed("clock", "AWS's answer carried no Date header to compare the clock with")
    offset = link.clock_offset
    detail = f"{abs(offset):.0f} s {'behind' if offset > 0 else 'ahead of'} AWS"
    if abs(offset) > SIGNATURE_SKEW_SECONDS:
        return failed("clock", f"{detail}: AWS refuses requests signed over {SIGNATURE_SKEW_SECONDS / 60:.0f} min "
                               "off; set the time and keep it with NTP (chrony, systemd-timesyncd)")
    return passed("clock", detail)


def credentials_check(config: Config, clients: dict[str, Any], *, greengrass: bool) -> Check:
    """Credentials from the same chain the component uses, verified with STS GetCallerIdentity
    (which needs no permission) when its endpoint answers; the component itself never calls STS."""
    import boto3
    from botocore.config import Config as BotoConfig
    from botocore.exceptions import BotoCoreError, ClientError

    fix = cloud_errors.credentials_fix(greengrass)
    tes = os.environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "")
    session = boto3.session.Session(region_name=config.aws.region)
    try:
        credentials = session.get_credentials()
    except BotoCoreError as exc:
        if tes:
            return failed("credentials", f"the token exchange service ({tes}) gave none ({exc}): check that the "
                                         "nucleus's iotRoleAlias names an existing role alias for the token exchange "
                                         "role, and that the device certificate's policy allows "
                                         "iot:AssumeRoleWithCertificate on it")
        return failed("credentials", f"{exc}: {fix}")
    if credentials is None:
        missing = ("this process has no token exchange service address (AWS_CONTAINER_CREDENTIALS_FULL_URI; "
                   "run doctor in the component's environment): " if greengrass else "")
        return failed("credentials", f"no AWS credentials found: {missing}{fix}")
    method = credentials.method
    sts = session.client("sts", endpoint_url=config.aws.endpoint_url or None, config=clients["s3"].meta.config.merge(
        BotoConfig(retries={"total_max_attempts": 1}, connect_timeout=PROBE_TIMEOUT_SECONDS)))
    try:
        arn = sts.get_caller_identity()["Arn"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if cloud_errors.kind(exc) != "credentials":
            return passed("credentials", f"found ({method}); not verified: STS says {error.get('Code')}")
        return failed("credentials", f"found ({method}) but AWS refuses them ({error.get('Code')}: "
                                     f"{error.get('Message')}): renew them; {fix}")
    except Exception as exc:  # noqa: BLE001 - the component does not need STS: only not verified
        why = why_unreachable(exc) if unreachable(exc) else type(exc).__name__
        return passed("credentials", f"found ({method}); not verified, STS did not answer: {why}")
    return passed("credentials", f"{arn} (from {method})")


@dataclass
class Resources:
    """The signed checks, each skipped when a cause found earlier makes it meaningless: an
    endpoint that cannot be reached, no credentials, or a refusal a check here ran into."""

    config: Config
    clients: dict[str, Any]
    link: Link
    clock_ok: bool
    blocker: str | None = None  # a cause every later signed check shares

    def check(self, name: str, service: str, call: Callable[[Any], Any], *, setting: str, output: str,
              shown: str = "") -> Check:
        """``call`` on the service's client; ``setting`` names what to fix and ``output`` the stack
        output to copy it from (or a sentence, for what is not a stack output); ``shown`` is
        what a PASS says (else the setting's value)."""
        from botocore.exceptions import ClientError, NoCredentialsError

        why = self.link.blocked(service) or self.blocker
        if why:
            return skipped(name, why)
        value = shown or (getattr(self.config.aws, setting.removeprefix("aws.")) if setting.startswith("aws.") else "")
        where = f"check {setting} against the stack output {output}" if output[:1].isupper() else output
        try:
            call(self.clients[service])
        except ClientError as exc:
            return self._refused(name, exc, value, where)
        except NoCredentialsError:
            self.blocker = "no credentials (see credentials)"
            return skipped(name, self.blocker)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, none is fatal here
            if unreachable(exc):
                return failed(name, f"{self.clients[service].meta.endpoint_url} cannot be reached: "
                                    f"{why_unreachable(exc)}; {_network_fix(self.config)}")
            return failed(name, f"{type(exc).__name__}: {exc}; {where}")
        return passed(name, value or "reachable")

    def _refused(self, name: str, exc: Any, value: str, where: str) -> Check:
        error, headers = exc.response.get("Error", {}), exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        code = str(error.get("Code", ""))
        said = f"AWS refuses {exc.operation_name} ({code})"
        found = cloud_errors.kind(exc)
        if found == "clock":
            self.blocker = "AWS refuses signatures at this clock (see clock)"
            return skipped(name, self.blocker) if not self.clock_ok else failed(name, f"{said}: {cloud_errors.CLOCK}")
        if found == "credentials":
            self.blocker = f"AWS refuses the credentials (see {name})"
            return failed(name, f"{said}: the credentials are wrong or expired: renew them; "
                                f"{cloud_errors.credentials_fix(None)}")
        if code in ("301", "PermanentRedirect") and headers.get("x-amz-bucket-region"):
            return failed(name, f"{value} is in {headers['x-amz-bucket-region']}, not {self.config.aws.region}: "
                                "set aws.region to the stack's region")
        if found == "resource" or code in ("404", "NotFound", "NoSuchKey"):
            return failed(name, f"{value or 'it'} does not exist ({code}): {where}")
        if found == "permission" or code in ("403", "Forbidden"):
            return failed(name, f"{said}: {cloud_errors.PERMISSION}; if it still fails, {where} (a bucket of "
                                "another account refuses too)")
        return failed(name, f"{said}: {error.get('Message', '')}; {where}")


def own_prefix(config: Config, top: str) -> str:
    """Where this gateway's objects lie under ``top`` (incoming, results): the only prefixes the
    stack's EdgeDevicePolicy lets it list, so the bucket checks list them, as the component does."""
    return f"{top}/{config.site}/{config.line}/{config.device}/"


def _bucket_check(resources: Resources, identity: Check, name: str, *, bucket: str, prefix: str, setting: str,
                  output: str) -> Check:
    """List this gateway's own prefix (MaxKeys 1): the bucket exists and the policy lets it in."""
    if not identity.ok:  # the policy refuses the listing for that cause alone: one FAIL, above
        return skipped(name, "the device id is not the thing name (see device id)")
    return resources.check(name, "s3", lambda s3: s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1),
                           setting=setting, output=output)


def result_queue_check(resources: Resources, identity: Check) -> Check:
    """The gateway's own result queue, created as the component creates it at start (CreateQueue
    with the same attributes changes nothing): push works, or why results will be listed."""
    name, config = "result queue", resources.config
    if not config.results.push:
        return skipped(name, "results.push is off: results are listed")
    queue = config.results.queue_name(config.aws, config.device)
    if not queue:
        return warned(name, "aws.result_queue_prefix is empty, so results are listed every results.poll_seconds: "
                            "copy the stack output ResultQueuePrefix into it")
    if not identity.ok:
        return skipped(name, "the device id is not the thing name (see device id)")
    return resources.check(name, "sqs", lambda sqs: sqs.create_queue(QueueName=queue, Attributes=QUEUE_ATTRIBUTES),
                           setting="aws.result_queue_prefix", output="ResultQueuePrefix", shown=queue)


def resource_checks(resources: Resources, identity: Check) -> list[Check]:
    """The stack's resources; ``identity`` is the device id checked against the thing name."""
    config = resources.config.aws
    return [
        _bucket_check(resources, identity, "source bucket", bucket=config.source_bucket,
                      prefix=own_prefix(resources.config, "results" if config.uploads_to_final else "incoming"),
                      setting="aws.source_bucket",
                      output="SourceBucketName"),
        _bucket_check(resources, identity, "final bucket", bucket=config.final_bucket,
                      prefix=own_prefix(resources.config, "results"), setting="aws.final_bucket",
                      output="FinalBucketName"),
        resources.check("queue", "sqs", lambda sqs: sqs.get_queue_attributes(QueueUrl=config.queue_url,
                                                                              AttributeNames=["QueueArn"]),
                        setting="aws.queue_url", output="ImageQueueUrl"),
        resources.check("state machine", "stepfunctions",
                        lambda sfn: sfn.describe_state_machine(stateMachineArn=config.state_machine_arn),
                        setting="aws.state_machine_arn", output="StateMachineArn"),
        result_queue_check(resources, identity),
    ]
