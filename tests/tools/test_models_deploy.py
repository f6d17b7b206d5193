"""`batchsight model deploy`, `rollback`, `promote`, `list`: the index in moto, and the Greengrass deployment
requests checked by botocore's Stubber against botocore's own greengrassv2 model (moto has no greengrassv2)."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from batchsight_tools.models.arguments import Clients
from batchsight_tools.models.cli import main
from tests.tools import models_support
from tests.tools.models_support import REGION, Aws, Fitted

moto_endpoint, aws, labelled, fitted = (models_support.moto_endpoint, models_support.aws, models_support.labelled,
                                        models_support.fitted)
GROUP = "arn:aws:iot:us-east-1:123456789012:thinggroup/line3-gateways"
COMPONENT = "com.batchsight.EdgeInspector"
BASE = {"targetArn": GROUP, "deploymentId": "d-1", "revisionId": "4", "deploymentName": "line 3",
        "deploymentStatus": "ACTIVE", "isLatestForTarget": True,
        "components": {"aws.greengrass.Nucleus": {"componentVersion": "2.14.0"},
                       COMPONENT: {"componentVersion": "1.3.0", "configurationUpdate": {
                           "merge": json.dumps({"site": "plant1", "inference": {"mode": "edge", "model": "old"}})}}},
        "deploymentPolicies": {"failureHandlingPolicy": "ROLLBACK"}}


@pytest.fixture
def greengrass() -> Any:
    client = boto3.client("greengrassv2", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def published(aws: Aws, labelled: Path, fitted: Fitted) -> Aws:
    """Versions 1 and 2 of `inspection`, 1 current."""
    for _ in range(2):
        assert main(["publish", "--bucket", aws.bucket, "--model", str(fitted.good), "--dataset", str(labelled),
                     *aws.args]) == 0
    assert _run(aws, "deploy", "--version", "1") == 0
    return aws


def _run(aws: Aws, *argv: str, greengrass: Any = None) -> int:
    class WithStub(Clients):
        def client(self, service: str) -> Any:
            return greengrass if service == "greengrassv2" and greengrass is not None else super().client(service)

    def clients(args: argparse.Namespace) -> Clients:
        return WithStub(args)

    return main([argv[0], "--bucket", aws.bucket, *argv[1:], *aws.args], clients=clients)


def _index(aws: Aws) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key="models/inspection/index.json")
                                          ["Body"].read())
    return document


def _expect_base(stubber: Stubber, base: dict[str, Any] | None = BASE) -> None:
    stubber.add_response("list_deployments", {"deployments": [] if base is None else [
        {key: base[key] for key in ("targetArn", "deploymentId", "revisionId", "deploymentName", "deploymentStatus",
                                    "isLatestForTarget")}]}, {"targetArn": GROUP, "historyFilter": "LATEST_ONLY"})
    if base is not None:
        stubber.add_response("get_deployment", base, {"deploymentId": base["deploymentId"]})


def _merge(request: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = json.loads(request["components"][COMPONENT]["configurationUpdate"]["merge"])
    return merged


def test_deploy_makes_a_version_current_and_rollback_returns(published: Aws,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(published, "deploy", "--version", "2") == 0
    assert (_index(published)["current"], _index(published)["history"]) == ("2", ["1", "2"])
    assert "the pipeline's lambda backend uses it from its next start" in capsys.readouterr().out
    assert _run(published, "rollback") == 0
    assert (_index(published)["current"], _index(published)["history"]) == ("1", ["1"])
    assert _run(published, "rollback") == 2
    assert "no earlier current version to roll back to" in capsys.readouterr().err


def test_the_gateway_deployment_keeps_the_groups_components_and_configuration(
        published: Aws, greengrass: Any, tmp_path: Path) -> None:
    client, stubber = greengrass
    _expect_base(stubber)
    uri = f"s3://{published.bucket}/models/inspection/2/"
    expected = {"targetArn": GROUP, "deploymentName": "batchsight inspection version 2",
                "components": {"aws.greengrass.Nucleus": {"componentVersion": "2.14.0"},
                               COMPONENT: {"componentVersion": "1.3.0", "configurationUpdate": {"merge": json.dumps(
                                   {"inference": {"mode": "edge", "model": uri}, "site": "plant1"}, sort_keys=True)}}},
                "deploymentPolicies": {"failureHandlingPolicy": "ROLLBACK"}}
    stubber.add_response("create_deployment", {"deploymentId": "d-2"}, expected)
    output = tmp_path / "deployment.json"
    assert _run(published, "deploy", "--version", "2", "--gateways", GROUP, "--output", str(output), "--apply",
                greengrass=client) == 0
    assert json.loads(output.read_text()) == expected
    assert _index(published)["current"] == "2"


def test_without_apply_only_the_document_is_written(published: Aws, greengrass: Any, tmp_path: Path) -> None:
    client, stubber = greengrass
    _expect_base(stubber)
    output = tmp_path / "deployment.json"
    assert _run(published, "deploy", "--gateways", GROUP, "--output", str(output), greengrass=client) == 0
    request = json.loads(output.read_text())
    assert _merge(request)["inference"]["model"] == f"s3://{published.bucket}/models/inspection/1/"
    stubber.add_response("create_deployment", {"deploymentId": "d-3"}, request)   # as `--cli-input-json` sends it
    client.create_deployment(**request)


def test_a_group_never_deployed_needs_the_component_version(published: Aws, greengrass: Any, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = greengrass
    _expect_base(stubber, None)
    before = _index(published)
    assert _run(published, "deploy", "--version", "2", "--gateways", GROUP, "--output", str(tmp_path / "d.json"),
                greengrass=client) == 2
    assert re.search(r"has no deployment of com\.batchsight\.EdgeInspector to start from; give --component-version",
                     capsys.readouterr().err)
    assert _index(published) == before
    _expect_base(stubber, None)
    assert _run(published, "deploy", "--version", "2", "--gateways", GROUP, "--output", str(tmp_path / "d.json"),
                "--component-version", "1.4.0", greengrass=client) == 0
    request = json.loads((tmp_path / "d.json").read_text())
    assert request["components"] == {COMPONENT: {"componentVersion": "1.4.0", "configurationUpdate": {
        "merge": json.dumps({"inference": {"model": f"s3://{published.bucket}/models/inspection/2/"}})}}}


def test_rollback_on_both_paths(published: Aws, greengrass: Any, tmp_path: Path) -> None:
    client, stubber = greengrass
    assert _run(published, "deploy", "--version", "2") == 0
    _expect_base(stubber)
    stubber.add_response("create_deployment", {"deploymentId": "d-4"})
    assert _run(published, "rollback", "--gateways", GROUP, "--apply", "--output", str(tmp_path / "d.json"),
                greengrass=client) == 0
    assert _index(published)["current"] == "1"
    assert _merge(json.loads((tmp_path / "d.json").read_text()))["inference"]["model"].endswith("/inspection/1/")


def test_a_candidate_runs_in_shadow_then_is_promoted(published: Aws, greengrass: Any, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = greengrass
    _expect_base(stubber)
    assert _run(published, "deploy", "--candidate", "2", "--gateways", GROUP, "--output", str(tmp_path / "c.json"),
                greengrass=client) == 0
    assert (_index(published)["current"], _index(published)["candidate"]) == ("1", "2")
    shadow = _merge(json.loads((tmp_path / "c.json").read_text()))["inference"]
    assert shadow == {"mode": "edge", "model": f"s3://{published.bucket}/models/inspection/1/",
                      "shadow_model": f"s3://{published.bucket}/models/inspection/2/"}
    assert _run(published, "list") == 0
    listing = capsys.readouterr().out
    assert re.search(r"\n\s+1\s+\S+\s+[\d.]+\s+[\d.]+\s+current\n\s+2\s+\S+\s+[\d.]+\s+[\d.]+\s+candidate\n", listing)
    _expect_base(stubber)
    assert _run(published, "promote", "--gateways", GROUP, "--output", str(tmp_path / "p.json"),
                greengrass=client) == 0
    index = _index(published)
    assert (index["current"], index["candidate"], index["history"]) == ("2", None, ["1", "2"])
    promoted = _merge(json.loads((tmp_path / "p.json").read_text()))["inference"]
    assert promoted["model"].endswith("/inspection/2/") and promoted["shadow_model"] == ""


def test_a_candidate_needs_a_current_version_to_run_beside(aws: Aws, labelled: Path, fitted: Fitted,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["publish", "--bucket", aws.bucket, "--model", str(fitted.good), "--dataset", str(labelled),
                 *aws.args]) == 0
    assert _run(aws, "deploy", "--candidate", "1") == 2
    assert "has no current version for a candidate to run beside" in capsys.readouterr().err


def test_a_failed_gateway_deployment_says_the_index_already_changed(published: Aws, greengrass: Any, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = greengrass
    _expect_base(stubber)
    stubber.add_client_error("create_deployment", "AccessDeniedException", "not allowed")
    assert _run(published, "deploy", "--version", "2", "--gateways", GROUP, "--apply", "--output",
                str(tmp_path / "d.json"), greengrass=client) == 1
    err = capsys.readouterr().err
    assert "the index is changed, but creating the Greengrass deployment failed" in err
    assert f"--cli-input-json file://{tmp_path / 'd.json'}" in err and _index(published)["current"] == "2"


@pytest.mark.parametrize("damage, message", [
    (("models/inspection/2/package.json", b"{not json"), r"package\.json is not JSON .*the package is damaged"),
    (("models/inspection/2/package.json", b'{"files": {}}'), r"has no files\.model \{key, sha256, bytes\}"),
    (("models/inspection/2/model.npz", None), r"model\.npz: no such object: version 2's model file is missing"),
    (("models/inspection/2/model.npz", b"other bytes"), r"model\.npz: checksum mismatch: its SHA-256 is"),
])
def test_a_damaged_package_is_refused_and_nothing_changes(published: Aws, damage: tuple[str, bytes | None],
                                                          message: str, capsys: pytest.CaptureFixture[str]) -> None:
    key, body = damage
    if body is None:
        published.s3.delete_object(Bucket=published.bucket, Key=key)
    else:
        published.s3.put_object(Bucket=published.bucket, Key=key, Body=body)
    before = _index(published)
    assert _run(published, "deploy", "--version", "2") == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert "publish it again as a new version" in err
    assert _index(published) == before


def test_an_unknown_version_and_a_damaged_index(published: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(published, "deploy", "--version", "7") == 2
    assert "has no version 7; the versions are 1, 2" in capsys.readouterr().err
    published.s3.put_object(Bucket=published.bucket, Key="models/inspection/index.json", Body=b"[]")
    assert _run(published, "list") == 1
    assert "index.json is not a JSON object; restore an earlier version" in capsys.readouterr().err


def test_the_gateway_reads_the_package_the_deployment_names(published: Aws, greengrass: Any, tmp_path: Path) -> None:
    """Both sides of the contract: the gateway's own reader (component/batchsight/model_package.py) fetches and
    checks the package that `model deploy --gateways` points inference.model at."""
    from batchsight.model_package import prepare

    client, stubber = greengrass
    _expect_base(stubber)
    assert _run(published, "deploy", "--version", "2", "--gateways", GROUP, "--output", str(tmp_path / "d.json"),
                greengrass=client) == 0
    uri = _merge(json.loads((tmp_path / "d.json").read_text()))["inference"]["model"]
    prepared = prepare(uri, s3=published.s3, models_folder=tmp_path / "models")
    assert (prepared.identity.name, prepared.identity.version) == ("inspection", "2")
    assert prepared.path.read_bytes() == published.s3.get_object(
        Bucket=published.bucket, Key="models/inspection/2/model.npz")["Body"].read()
