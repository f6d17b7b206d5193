"""Overload control's scaling of a real-time SageMaker endpoint (UpdateEndpointWeightsAndCapacities).

moto keeps the endpoint and its variant's instance count; an endpoint that is Updating, or that
refuses an update, is botocore's Stubber on a real client (parameters validated against the
SageMaker service model).
"""
from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

from tests.cloud.test_backend_sagemaker import CONFIG, ENDPOINT, backend, moto_sagemaker, stubbed

__all__ = ["moto_sagemaker"]  # the fixture, used here by name


def described(status: str, current: int, desired: int | None = None) -> dict[str, Any]:
    """DescribeEndpoint's answer for an endpoint with one variant."""
    variant: dict[str, Any] = {"VariantName": "AllTraffic", "CurrentInstanceCount": current}
    if desired is not None:
        variant["DesiredInstanceCount"] = desired
    now = datetime.now(UTC)
    return {"EndpointName": ENDPOINT, "EndpointArn": f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{ENDPOINT}",
            "EndpointConfigName": CONFIG, "EndpointStatus": status, "CreationTime": now,
            "LastModifiedTime": now, "ProductionVariants": [variant]}


def test_scale_sets_the_variants_instance_count_and_reports_what_is_in_effect(moto_sagemaker: Any) -> None:
    model = backend(moto_sagemaker)
    assert model.scale(2) == 1, "no endpoint: one unit, nothing asked"
    model.start(run_token="run-1")
    assert model.scale(1) == 1
    assert model.scale(3) == 3
    variant = moto_sagemaker.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"][0]
    assert variant.get("DesiredInstanceCount", variant.get("CurrentInstanceCount")) == 3
    assert model.scale(500) == model.max_units, "bounded by the backend's own limit"


def test_an_endpoint_that_refuses_an_update_keeps_its_count_for_the_next_check() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_endpoint", described("InService", 2), {"EndpointName": ENDPOINT})
    asked = [{"VariantName": "AllTraffic", "DesiredInstanceCount": 4}]
    stub.add_client_error("update_endpoint_weights_and_capacities", "ValidationException",
                          "Cannot update in-progress endpoint",
                          expected_params={"EndpointName": ENDPOINT, "DesiredWeightsAndCapacities": asked})
    with stub:
        assert backend(client).scale(4) == 2
    stub.assert_no_pending_responses()


def test_an_updating_endpoint_is_not_asked_again() -> None:
    client, stub = stubbed("sagemaker")
    stub.add_response("describe_endpoint", described("Updating", 1, desired=2), {"EndpointName": ENDPOINT})
    with stub:
        assert backend(client).scale(3) == 2
    stub.assert_no_pending_responses()
