"""Overload control's scaling of a SageMaker Serverless endpoint: its MaxConcurrency, per unit.

moto server over HTTP where it has the calls (a config without a ServerlessConfig, a missing
endpoint); moto has no UpdateEndpoint, so the scaling itself is botocore's Stubber on a real
client, every call's parameters and answer validated against the SageMaker service model.
"""
from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

from botocore.stub import Stubber

from batchsight_pipeline.backends.sagemaker_serverless import SageMakerServerlessBackend
from tests.cloud.moto_stack import ACCOUNT, REGION, Moto, unique


def serverless(sagemaker: Any, config: str, *, endpoint: str) -> SageMakerServerlessBackend:
    return SageMakerServerlessBackend(endpoint_name=endpoint, endpoint_config_name=config, sagemaker=sagemaker,
                                      start_timeout_seconds=600)


def endpoint(config: str, status: str = "InService") -> dict[str, Any]:
    """DescribeEndpoint's answer for an endpoint running ``config``."""
    now = datetime.now(UTC)
    return {"EndpointName": "ep", "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/ep",
            "EndpointConfigName": config, "EndpointStatus": status, "CreationTime": now, "LastModifiedTime": now}


def variants(concurrency: int) -> list[dict[str, Any]]:
    return [{"VariantName": "AllTraffic", "ModelName": "m",
             "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": concurrency}}]


def expect_scaling(stub: Stubber, *, running: str, to: str, concurrency: int | None = None,
                   exists: bool = False) -> None:
    """The calls of one scaling: read the endpoint and the configured config, make the config of
    the units (unless it is the configured one, ``concurrency`` None), switch the endpoint to it."""
    stub.add_response("describe_endpoint", endpoint(running), {"EndpointName": "ep"})
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": "cfg", "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/cfg",
        "CreationTime": datetime.now(UTC), "ProductionVariants": variants(20)}, {"EndpointConfigName": "cfg"})
    if concurrency is not None:
        asked = {"EndpointConfigName": to, "ProductionVariants": variants(concurrency)}
        if exists:
            stub.add_client_error("create_endpoint_config", "ValidationException",
                                  f"Cannot create already existing endpoint configuration {to}", expected_params=asked)
        else:
            stub.add_response("create_endpoint_config", {
                "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{to}"}, asked)
    stub.add_response("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/ep"},
                      {"EndpointName": "ep", "EndpointConfigName": to})


def test_units_raise_the_endpoints_concurrency_and_give_it_back(moto: Moto) -> None:
    """moto has no UpdateEndpoint: the calls are stubbed, validated against the service model."""
    client = moto.session.client("sagemaker", region_name=REGION)
    stub, backend = Stubber(client), serverless(client, "cfg", endpoint="ep")
    expect_scaling(stub, running="cfg", to="cfg-u2", concurrency=40)
    expect_scaling(stub, running="cfg-u2", to="cfg-u3", concurrency=60)
    expect_scaling(stub, running="cfg-u3", to="cfg-u2", concurrency=40, exists=True)
    expect_scaling(stub, running="cfg-u2", to="cfg")
    expect_scaling(stub, running="cfg", to="cfg-u10", concurrency=200)
    stub.add_response("describe_endpoint", endpoint("cfg-u10", status="Updating"), {"EndpointName": "ep"})
    with stub:
        assert backend.scale(2) == 2
        assert backend.scale(3) == 3
        assert backend.scale(2) == 2, "the config made for 2 units earlier is reused"
        assert backend.scale(1) == 1, "one unit: the configured config itself"
        assert backend.scale(64) == 10, "200 concurrent calls at most per endpoint: 10 units of 20"
        assert backend.scale(1) == 10, "an endpoint Updating is not asked again"
    stub.assert_no_pending_responses()


def test_no_endpoint_is_one_unit_and_asks_nothing(moto: Moto) -> None:
    assert serverless(moto.client("sagemaker"), unique("cfg"), endpoint=unique("ep")).scale(2) == 1


def test_a_config_without_serverless_concurrency_is_left_alone(moto: Moto) -> None:
    sagemaker, model, config, endpoint = moto.client("sagemaker"), unique("m"), unique("cfg"), unique("ep")
    sagemaker.create_model(ModelName=model, ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/sm",
                           PrimaryContainer={"Image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/m:1"})
    sagemaker.create_endpoint_config(EndpointConfigName=config, ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": model, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    backend = serverless(sagemaker, config, endpoint=endpoint)
    backend.start(run_token="run-1")
    assert backend.scale(2) == 1
    assert sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointConfigName"] == config


def test_an_update_refused_keeps_the_concurrency_for_the_next_check(moto: Moto) -> None:
    client = moto.session.client("sagemaker", region_name=REGION)
    stub = Stubber(client)
    stub.add_response("describe_endpoint", endpoint("cfg-u2"), {"EndpointName": "ep"})
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": "cfg", "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/cfg",
        "CreationTime": datetime.now(UTC), "ProductionVariants": variants(20)}, {"EndpointConfigName": "cfg"})
    stub.add_response("create_endpoint_config", {
        "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/cfg-u3"},
        {"EndpointConfigName": "cfg-u3", "ProductionVariants": variants(60)})
    stub.add_client_error("update_endpoint", "ValidationException", "Cannot update in-progress endpoint",
                          expected_params={"EndpointName": "ep", "EndpointConfigName": "cfg-u3"})
    with stub:
        assert serverless(client, "cfg", endpoint="ep").scale(3) == 2, "the units of the config it runs"
    stub.assert_no_pending_responses()
