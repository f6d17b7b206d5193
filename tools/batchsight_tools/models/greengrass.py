"""The Greengrass v2 deployment that tells a thing group's gateways which model version to run.

A deployment to a thing group replaces that group's previous one: a component it leaves out is
removed from the gateways, and configuration merged by the previous deployment is not merged
again on a gateway that joins later. So the document starts from the group's latest deployment
(ListDeployments LATEST_ONLY, GetDeployment) and changes only ``com.batchsight.EdgeInspector``'s
configuration merge, deep-merging into what that deployment merged:

    {"inference": {"model": "s3://BUCKET/models/NAME/VERSION/"}}            (deploy, rollback)
    {"inference": {"model": ".../CURRENT/", "shadow_model": ".../N/"}}     (deploy --candidate N)
    {"inference": {"model": ".../N/", "shadow_model": ""}}                 (promote: the shadow run ends)

(``inference.model`` and ``inference.shadow_model`` are the gateway's settings: recipe.yaml,
component/batchsight/model_package.py reads the package folder they name.)

The document is CreateDeployment's request, so it can also be applied by hand:
``aws greengrassv2 create-deployment --cli-input-json file://greengrass-deployment.json``.
moto has no greengrassv2; the tests check these requests with botocore's Stubber against
botocore's own service model.
"""
from __future__ import annotations

import copy
import json
from typing import Any

from batchsight_tools.models.arguments import UsageError

COMPONENT = "com.batchsight.EdgeInspector"
KEEP = ("deploymentPolicies", "iotJobConfiguration")   # carried over from the group's latest deployment


def package_uri(bucket: str, prefix: str) -> str:
    """What ``inference.model`` names: the version's package folder."""
    return f"s3://{bucket}/{prefix}"


def latest_deployment(greengrass: Any, target_arn: str) -> dict[str, Any] | None:
    """The group's current deployment (GetDeployment's answer), or None if it has never had one."""
    found = greengrass.list_deployments(targetArn=target_arn, historyFilter="LATEST_ONLY").get("deployments", [])
    if not found:
        return None
    deployment: dict[str, Any] = greengrass.get_deployment(deploymentId=found[0]["deploymentId"])
    return deployment


def document(target_arn: str, base: dict[str, Any] | None, *, inference: dict[str, str], deployment_name: str,
             component_version: str | None = None) -> dict[str, Any]:
    """CreateDeployment's request: ``base``'s components, with the EdgeInspector's ``inference`` merged."""
    components = copy.deepcopy((base or {}).get("components") or {})
    inspector = components.get(COMPONENT, {})
    version = component_version or inspector.get("componentVersion")
    if not version:
        raise UsageError(f"{target_arn} has no deployment of {COMPONENT} to start from; give --component-version "
                         "(the version gdk component publish made) or deploy the component first")
    update = inspector.get("configurationUpdate", {})
    merged = _deep_merge(json.loads(update.get("merge") or "{}"), {"inference": inference})
    inspector = {**inspector, "componentVersion": version,
                 "configurationUpdate": {**update, "merge": json.dumps(merged, sort_keys=True)}}
    components[COMPONENT] = inspector
    request = {"targetArn": target_arn, "deploymentName": deployment_name, "components": components}
    request.update({key: copy.deepcopy(base[key]) for key in KEEP if base and base.get(key)})
    return request


def apply(greengrass: Any, request: dict[str, Any]) -> str:
    """Create the deployment; its id."""
    deployment_id: str = greengrass.create_deployment(**request)["deploymentId"]
    return deployment_id


def _deep_merge(into: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    merged = dict(into)
    for key, value in change.items():
        merged[key] = (_deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict)
                       else value)
    return merged
