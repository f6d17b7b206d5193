"""The deployable definitions are clean under the linters the brief names, and consistent."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.cloud.tooling import checkov, sam
from tests.support import REPO

CLOUD = REPO / "cloud"
ASL = CLOUD / "statemachine" / "batch_pipeline.asl.json"


def _tool(name: str) -> str:
    path = shutil.which(name) or str(REPO / ".venv" / "bin" / name)
    if not shutil.which(path):
        pytest.fail(f"{name} is not installed; pip install -e '.[test]'")
    return path


def test_template_is_clean_under_cfn_lint() -> None:
    result = subprocess.run([_tool("cfn-lint"), str(CLOUD / "template.yaml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_asl_is_valid_json_and_clean_under_statelint() -> None:
    json.loads(ASL.read_text())
    result = subprocess.run([_tool("statelint"), "--ignore=URI", str(ASL)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_asl_placeholder_is_substituted_by_the_template() -> None:
    from batchsight_tools.localcloud.template import load_template

    placeholders = set(re.findall(r"\$\{(\w+)\}", ASL.read_text()))
    machine = load_template()["Resources"]["BatchStateMachine"]["Properties"]
    assert placeholders == set(machine["DefinitionSubstitutions"])
    assert (CLOUD / machine["DefinitionUri"]) == ASL


def test_every_path_after_start_model_reaches_a_stop() -> None:
    """Walk the state graph: from StartModel, and from Resume (a successor that inherited the hosted
    model), every terminal state is preceded by a stop, or hands the model to a successor."""
    states = json.loads(ASL.read_text())["States"]

    def successors(name: str) -> list[str]:
        state = states[name]
        nexts = [state.get("Next"), state.get("Default")]
        nexts += [c["Next"] for c in state.get("Choices", [])] + [c["Next"] for c in state.get("Catch", [])]
        return [n for n in nexts if n]

    stops = {"StopModel", "StopModelAfterFailure"}
    # LockLost: another execution took the model over; stopping it would cut off their drain.
    # HandedOver: the successor this execution started owns the lock and the hosted model now.
    allowed_without_stop = {"LockLost", "HandedOver"}
    seen, frontier = set(), ["StartModel", "Resume"]
    while frontier:
        name = frontier.pop()
        if name in seen or name in stops or name in allowed_without_stop:
            continue
        seen.add(name)
        assert states[name]["Type"] not in ("Succeed", "Fail"), f"{name} ends the run without a stop"
        assert not states[name].get("End"), f"{name} ends the run without a stop"
        if states[name]["Type"] in ("Task", "Map"):
            assert states[name].get("Catch"), f"{name} can fail without reaching a stop"
        frontier.extend(successors(name))
    assert {"PrepareHandOver", "HandedOverOrDrainOn", "CheckInFlight"} <= seen


def test_the_stops_renew_the_lease_and_never_retry_a_lost_lock() -> None:
    """StopModel's ModelBusy retries outlast the lease: each attempt renews it (model_control), and
    a lock taken over meanwhile ends the run at LockLost rather than stopping another's model."""
    states = json.loads(ASL.read_text())["States"]
    for name in ("StopModel", "StopModelAfterFailure"):
        first = states[name]["Retry"][0]
        assert first["ErrorEquals"] == ["LockLost"] and first["MaxAttempts"] == 0, name
        assert states[name]["Catch"] == [{"ErrorEquals": ["LockLost"], "ResultPath": "$.error", "Next": "LockLost"}]
        assert states[name]["Parameters"]["Payload"]["execution.$"] == "$$.Execution.Id"


def test_a_drain_worker_that_times_out_or_is_throttled_never_fails_the_batch() -> None:
    """Retried, then caught inside the Map: the round goes on, the messages return to the queue."""
    processor = json.loads(ASL.read_text())["States"]["Drain"]["ItemProcessor"]["States"]
    worker = processor["DrainWorker"]
    retried = {error for retrier in worker["Retry"] for error in retrier["ErrorEquals"]}
    assert {"Sandbox.Timedout", "Lambda.Unknown", "Lambda.TooManyRequestsException"} <= retried
    (catcher,) = worker["Catch"]
    assert set(catcher["ErrorEquals"]) == retried and "States.ALL" not in catcher["ErrorEquals"]
    gave_up = processor[catcher["Next"]]
    assert gave_up["Type"] == "Pass" and gave_up["End"] and gave_up["Result"]["gave_up"] == 1


def test_the_drain_maps_concurrency_is_what_overload_control_plans_for() -> None:
    from batchsight_pipeline.overload import MAX_WORKERS

    assert json.loads(ASL.read_text())["States"]["Drain"]["MaxConcurrency"] == MAX_WORKERS


def test_only_the_drain_map_leads_to_the_step_that_sums_its_outputs() -> None:
    """The tally adds ``$.drained``: a state reached again without a new round would count that round twice."""
    states = json.loads(ASL.read_text())["States"]
    summing = {name for name, state in states.items() if "drained.$" in state.get("Parameters", {}).get("Payload", {})}
    assert summing, "some step must add each round's outputs to the tally"
    for name, state in states.items():
        nexts = {state.get("Next"), state.get("Default"), *(c.get("Next") for c in state.get("Choices", []))}
        if nexts & summing:
            assert state["Type"] == "Map", f"{name} leads to {nexts & summing} without a drain round"


def _statements(policy: object) -> list[dict]:
    """Inline statements, with the backend-conditional ones (Fn::If) unwrapped."""
    found = []
    for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
        if "Fn::If" in statement:
            found += [s for s in statement["Fn::If"][1:] if isinstance(s, dict) and "Effect" in s]
        else:
            found.append(statement)
    return found


# CloudWatch Logs' log-delivery calls (Step Functions execution logging) take no resource ARN:
# AWS documents Resource "*" for them, and they only let the service deliver to a log group.
LOG_DELIVERY = {"logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups"}
# "With the exception of ListQueues, all Amazon SQS actions support resource-level permissions"
# (SQS Developer Guide, identity-based policies): ModelControl lists the gateways' result queues
# by name prefix to announce a hosting (batchsight_pipeline/hosting_notice.py).
UNSCOPABLE = LOG_DELIVERY | {"sqs:ListQueues"}


def test_no_iam_statement_grants_every_action_or_resource() -> None:
    from batchsight_tools.localcloud.template import load_template

    resources = load_template()["Resources"]
    for name, spec in resources.items():
        for policy in spec.get("Properties", {}).get("Policies", []) or []:
            for statement in _statements(policy):
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                assert all("*" not in a for a in actions), f"{name}: wildcard action {actions}"
                if set(actions) <= UNSCOPABLE:
                    continue
                assert statement["Resource"] != "*", f"{name}: unscoped resource"


def test_python_runs_the_cli_help() -> None:
    result = subprocess.run([sys.executable, "-m", "batchsight_tools.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "demo" in result.stdout
    gateway = subprocess.run([sys.executable, "-m", "batchsight", "--help"], capture_output=True, text=True)
    assert gateway.returncode == 0 and "{run,status,doctor}" in gateway.stdout


def test_template_is_clean_under_sam_validate_lint() -> None:
    result = subprocess.run([sam(), "validate", "--lint", "--template", str(CLOUD / "template.yaml")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1",
                                 "SAM_CLI_TELEMETRY": "0"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_edge_device_policy_allows_only_its_calls_on_our_resources() -> None:
    from batchsight_tools.localcloud.template import load_template

    template = load_template()
    statements = template["Resources"]["EdgeDevicePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "sqs:SendMessage", "sqs:GetQueueAttributes",
                       "states:StartExecution", "states:DescribeStateMachine", "sqs:CreateQueue", "sqs:GetQueueUrl",
                       "sqs:SetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"}
    own_queue = statements[-1]
    assert own_queue["Sid"] == "OwnResultQueue" and own_queue["Resource"]["Fn::Sub"].endswith(
        ":${AWS::StackName}-results-${!credentials-iot:ThingName}")
    for statement in statements:
        assert statement["Effect"] == "Allow" and statement["Resource"] != "*"
    assert "EdgeDevicePolicyArn" in template["Outputs"]


def test_template_is_clean_under_checkov() -> None:
    """Zero failed checks; every skipped one carries its reason; SAM resources are really checked.

    checkov's cloudformation framework reads the SAM resources itself (AWS::Serverless::Function
    is checked as a function); its `serverless` framework is for serverless.yml, not SAM.
    """
    result = subprocess.run([checkov(), "-f", str(CLOUD / "template.yaml"), "--framework", "cloudformation",
                             "--output", "json", "--skip-download"],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "LOG_LEVEL": "WARNING"})
    report = json.loads(result.stdout)
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and result.returncode == 0, f"checkov findings: {failed}\n{result.stderr[-2000:]}"
    assert report["summary"]["parsing_errors"] == 0 and report["summary"]["passed"] > 0
    for skipped in report["results"]["skipped_checks"]:
        assert skipped["check_result"].get("suppress_comment", "").strip(), f"{skipped['check_id']} without a reason"
    results = report["results"]
    checked = {c["resource"].split(".")[0] for c in results["passed_checks"] + results["skipped_checks"]}
    assert "AWS::Serverless::Function" in checked, "the SAM functions were not analysed"


def test_every_checkov_skip_in_the_template_says_why() -> None:
    """Suppressions live only in the template's Metadata, each with an id and a real reason."""
    from batchsight_tools.localcloud.template import load_template

    skips = [(name, skip) for name, spec in load_template()["Resources"].items()
             for skip in spec.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips, "no suppressions found: was the Metadata moved?"
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip.get("id", "")), f"{name}: bad check id {skip}"
        assert len(str(skip.get("comment", "")).split()) >= 8, f"{name} {skip.get('id')}: give the reason"
    assert not (REPO / ".checkov.yaml").exists() and not (REPO / ".checkov.yml").exists(), \
        "no blanket skips outside the template"
