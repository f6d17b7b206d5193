"""The local cloud: moto server on 127.0.0.1 with the stack of cloud/template.yaml inside it.

Resources are created with boto3 from the template's own definitions (buckets, queues with
their redrive policy, functions with the Globals environment, the state machine from its
ASL file with DefinitionSubstitutions applied), so the demo and the integration tests
execute exactly what ``sam deploy`` would deploy.
"""
from __future__ import annotations

import io
import json
import logging
import os
import socket
import zipfile
from dataclasses import dataclass, field
from typing import Any

import boto3

from batchsight_tools.localcloud import lambda_runtime
from batchsight_tools.localcloud.template import evaluate_condition, load_template, resolve
from batchsight_tools.stack import cloud_dir

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "batchsight"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}


@dataclass
class StackOutputs:
    """What the edge configuration needs, as the template's Outputs name them."""

    endpoint_url: str
    source_bucket: str
    final_bucket: str
    queue_url: str
    dead_letter_queue_url: str
    state_machine_arn: str
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def result_queue_prefix(self) -> str:
        """The edge setting aws.result_queue_prefix: results pushed to the queue {prefix}-{device}."""
        return self.extra.get("ResultQueuePrefix", "")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalCloud:
    """Start moto server with Step Functions execution on and Lambdas run in-process."""

    def __init__(self, *, parameters: dict[str, str] | None = None,
                 function_environment: dict[str, str] | None = None,
                 timeouts: dict[str, int] | None = None) -> None:
        """``timeouts``: seconds by function (logical id) instead of the template's Timeout, so a
        test or a benchmark can make drain rounds as short as its scaled-down rates need."""
        self.parameters = parameters or {}
        self.function_environment = dict(function_environment or {})
        self.timeouts = dict(timeouts or {})
        if self.parameters.get("ModelBackend") == "local":  # the tools' plug-in, not a template value
            from batchsight_tools.localcloud.local_backend import LocalBackend

            self.function_environment.setdefault("MODEL_BACKEND", LocalBackend.PLUGIN)
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self.outputs: StackOutputs | None = None

    def start(self) -> StackOutputs:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        lambda_runtime.install()
        os.environ.update(CREDENTIALS)
        os.environ["MOTO_PORT"] = str(self.port)
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self.rebuild()

    def rebuild(self) -> StackOutputs:
        """Make the stack's resources on the running server, again after moto's state in this
        process was reset (a test's ``mock_aws`` resets every backend, this server's too). The
        names are the template's, so the outputs are the same."""
        self.outputs = _StackBuilder(self.endpoint_url, self.parameters,
                                     self.function_environment, self.timeouts).build()
        return self.outputs

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def update_environment(self, variables: dict[str, str]) -> dict[str, str]:
        """Set these variables in every function of the stack, as a stack update with another
        parameter would (a test's lower HandOverEvents, say); the values they had before."""
        lam, previous = self.client("lambda"), {}
        lambda_runtime.updating(set(variables))  # executions may still be running: they see either value
        try:
            for function in lam.list_functions()["Functions"]:
                if not function["FunctionName"].startswith(f"{STACK}-"):
                    continue
                current = function.get("Environment", {}).get("Variables", {})
                previous.update({k: current[k] for k in variables if k in current})
                lam.update_function_configuration(FunctionName=function["FunctionName"],
                                                  Environment={"Variables": {**current, **variables}})
        finally:
            lambda_runtime.forget(set(variables))
        return previous

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def __enter__(self) -> LocalCloud:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _StackBuilder:
    """Creates the template's resources in dependency order and remembers their identities."""

    def __init__(self, endpoint_url: str, parameters: dict[str, str],
                 function_environment: dict[str, str], timeouts: dict[str, int] | None = None) -> None:
        self.template = load_template()
        self.endpoint_url = endpoint_url
        self.parameters = parameters
        self.function_environment = function_environment
        self.timeouts = timeouts or {}
        self.physical: dict[str, dict[str | None, str]] = {}
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service, endpoint_url=self.endpoint_url,
                                                  region_name=REGION)
        return self._clients[service]

    def lookup(self, logical: str, attribute: str | None) -> str:
        if logical in self.physical:
            return self.physical[logical][attribute]
        if attribute is None and logical in self.template.get("Parameters", {}):
            default = self.template["Parameters"][logical].get("Default", "")
            return str(self.parameters.get(logical, default))
        pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::StackName": STACK, "AWS::Partition": "aws"}
        if logical in pseudo:
            return pseudo[logical]
        raise KeyError(f"template reference {logical}.{attribute} is not created yet")

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        return evaluate_condition(conditions[name], self.lookup, conditions)

    def resolve(self, value: Any) -> Any:
        return resolve(value, self.lookup, self.condition)

    def _resources(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """The template's resources of one type that its conditions create with these parameters."""
        return [(name, spec.get("Properties", {}))
                for name, spec in self.template["Resources"].items()
                if spec["Type"] == kind and ("Condition" not in spec or self.condition(spec["Condition"]))]

    def build(self) -> StackOutputs:
        for name, props in self._resources("AWS::S3::Bucket"):
            self._bucket(name, props)
        queues = self._resources("AWS::SQS::Queue")
        for name, props in sorted(queues, key=lambda q: "RedrivePolicy" in q[1]):
            self._queue(name, props)
        for name, props in self._resources("AWS::DynamoDB::Table"):
            self._table(name, props)
        for name, _ in self._resources("AWS::KMS::Key"):
            self._key(name)
        for name, props in self._resources("AWS::SNS::Topic"):
            self._topic(name, props)
        for name, props in self._resources("AWS::Serverless::LayerVersion"):
            self._layer(name, props)
        role = self._role()
        for name, props in self._resources("AWS::Serverless::Function"):
            self._function(name, props, role)
        for name, props in self._resources("AWS::Serverless::StateMachine"):
            self._state_machine(name, props, role)
        for name, props in self._resources("AWS::IAM::ManagedPolicy"):
            self._managed_policy(name, props)
        for name, props in self._resources("AWS::CloudWatch::Alarm"):
            self._alarm(name, props)
        outputs = {name: str(self.resolve(spec["Value"]))
                   for name, spec in self.template["Outputs"].items()}
        return StackOutputs(
            endpoint_url=self.endpoint_url, source_bucket=outputs["SourceBucketName"],
            final_bucket=outputs["FinalBucketName"], queue_url=outputs["ImageQueueUrl"],
            dead_letter_queue_url=outputs["DeadLetterQueueUrl"],
            state_machine_arn=outputs["StateMachineArn"], extra=outputs)

    def _bucket(self, logical: str, props: dict[str, Any]) -> None:
        name = f"{STACK}-{logical.lower()}"
        s3 = self._client("s3")
        s3.create_bucket(Bucket=name)
        if "BucketEncryption" in props:
            # CloudFormation and the S3 API name the same setting differently.
            rules = [{"ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"]}
                     for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(Bucket=name,
                                       PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
        self.physical[logical] = {None: name, "Arn": f"arn:aws:s3:::{name}"}

    def _queue(self, logical: str, props: dict[str, Any]) -> None:
        attributes: dict[str, str] = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "SqsManagedSseEnabled"):
            if key in props:
                attributes[key] = str(self.resolve(props[key])).lower()
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(self.resolve(props["RedrivePolicy"]))
        name = f"{STACK}-{logical}"
        url = self._client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
        self.physical[logical] = {None: url, "Arn": arn, "QueueName": name}

    def _table(self, logical: str, props: dict[str, Any]) -> None:
        name = f"{STACK}-{logical}"
        created = self._client("dynamodb").create_table(
            TableName=name, BillingMode=props["BillingMode"], KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            SSESpecification={"Enabled": props["SSESpecification"]["SSEEnabled"]})
        self.physical[logical] = {None: name, "Arn": created["TableDescription"]["TableArn"]}

    def _key(self, logical: str) -> None:
        metadata = self._client("kms").create_key(Description=f"{STACK} {logical}")["KeyMetadata"]
        self.physical[logical] = {None: metadata["KeyId"], "Arn": metadata["Arn"]}

    def _topic(self, logical: str, props: dict[str, Any]) -> None:
        name = f"{STACK}-{logical}"
        attributes = ({"KmsMasterKeyId": self.resolve(props["KmsMasterKeyId"])}
                      if "KmsMasterKeyId" in props else {})
        arn = self._client("sns").create_topic(Name=name, Attributes=attributes)["TopicArn"]
        self.physical[logical] = {None: arn, "TopicName": name}

    def _alarm(self, logical: str, props: dict[str, Any]) -> None:
        """The alarm as PutMetricAlarm takes it: CloudFormation's properties are the API's, but
        a Ref to a Number parameter resolves to a string."""
        alarm = self.resolve(props)
        alarm.setdefault("AlarmName", f"{STACK}-{logical}")
        alarm["Threshold"] = float(alarm["Threshold"])
        for key in ("EvaluationPeriods", "DatapointsToAlarm", "Period"):
            if key in alarm:
                alarm[key] = int(alarm[key])
        for query in alarm.get("Metrics", []):
            if "MetricStat" in query:
                query["MetricStat"]["Period"] = int(query["MetricStat"]["Period"])
        self._client("cloudwatch").put_metric_alarm(**alarm)
        self.physical[logical] = {None: alarm["AlarmName"], "Arn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:"
                                                                   f"{alarm['AlarmName']}"}

    def _managed_policy(self, logical: str, props: dict[str, Any]) -> None:
        document = self.resolve(props["PolicyDocument"])
        arn = self._client("iam").create_policy(PolicyName=f"{STACK}-{logical}",
                                                PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        self.physical[logical] = {None: arn}

    def _role(self) -> str:
        trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                 "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]}}]}
        return self._client("iam").create_role(RoleName=f"{STACK}-local",
                                               AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]

    def _function(self, logical: str, props: dict[str, Any], role: str) -> None:
        defaults = self.template.get("Globals", {}).get("Function", {})
        merged = {**defaults, **props}
        # SAM merges a function's variables into the Globals' ones
        variables = {**defaults.get("Environment", {}).get("Variables", {}),
                     **props.get("Environment", {}).get("Variables", {})}
        environment = self.resolve(variables)
        environment = {k: str(v) for k, v in {**environment, **self.function_environment}.items()}
        name = f"{STACK}-{logical}"
        created = self._client("lambda").create_function(
            FunctionName=name, Runtime=merged["Runtime"], Role=role, Handler=merged["Handler"],
            Code={"ZipFile": _placeholder_zip()},
            Timeout=int(self.timeouts.get(logical, self.resolve(merged.get("Timeout", 3)))),
            MemorySize=int(self.resolve(merged.get("MemorySize", 128))), Environment={"Variables": environment},
            Layers=[str(layer) for layer in self.resolve(merged.get("Layers", []))])
        lambda_runtime.register(name, code_uri=str(merged["CodeUri"]), handler=str(merged["Handler"]))
        self.physical[logical] = {None: name, "Arn": created["FunctionArn"]}

    def _layer(self, logical: str, props: dict[str, Any]) -> None:
        """The layer's code is installed in this process already (the dev install)."""
        arn = self._client("lambda").publish_layer_version(
            LayerName=f"{STACK}-{logical}", Content={"ZipFile": _placeholder_zip()},
            CompatibleRuntimes=props.get("CompatibleRuntimes", []))["LayerVersionArn"]
        self.physical[logical] = {None: arn}

    def _state_machine(self, logical: str, props: dict[str, Any], role: str) -> None:
        definition = (cloud_dir() / props["DefinitionUri"]).read_text()
        for key, value in self.resolve(props.get("DefinitionSubstitutions", {})).items():
            definition = definition.replace("${" + key + "}", str(value))
        name = str(self.resolve(props["Name"])) if "Name" in props else f"{STACK}-{logical}"
        arn = self._client("stepfunctions").create_state_machine(
            name=name, definition=definition, roleArn=role)["stateMachineArn"]
        self.physical[logical] = {None: arn, "Arn": arn}


def _placeholder_zip() -> bytes:
    """moto wants a code package; the real code runs in-process from the stack's folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "code runs in-process from cloud/functions (batchsight_tools.stack)")
    return buffer.getvalue()
