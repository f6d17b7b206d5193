"""Greengrass v2 packaging, the files: recipe.yaml, gdk-config.json and the requirements files.

Both are validated against the official schemas; the rest is checked by hand: what the schemas
miss (lifecycle step names, accessControl shape, recipe variables, artifact name = zip name, size
limit) and the gdk custom build command. The build itself: test_greengrass_artifact.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.gateway.greengrass_support import (
    COMPONENT, DETECTOR_REQUIREMENTS, GDK_CONFIG, INCLUDES, RECIPE, RECIPE_VARIABLE, REQUIREMENTS,
    ROOT, ZIP_FILE, default_configuration, device_paths, include_args, interpolate, linux_manifest,
    load_recipe, lower_keys, program_configuration, resolve_pointer, schema, schema_errors,
)


def _documented_config() -> dict:
    """The YAML file of `run --config` = the DefaultConfiguration: the program's own defaults, so
    the recipe cannot drift from what the program accepts."""
    from dataclasses import asdict

    from batchsight.config import Config

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return str(value) if isinstance(value, Path) else value

    return plain(asdict(Config()))


DOCUMENTED_CONFIG = _documented_config()
# Canonical spelling (gdk: "recipe attribute names are case sensitive").
LIFECYCLE_KEYS = {"Setenv", "Bootstrap", "Install", "Startup", "Run", "Shutdown", "Recover"}
STEP_KEYS = {"Script", "RequiresPrivilege", "Skipif", "Timeout", "Setenv"}
# IPC authorization: service identifier -> operations it accepts in a policy.
IPC_OPERATIONS = {
    "aws.greengrass.ipc.pubsub": {
        "aws.greengrass#PublishToTopic", "aws.greengrass#SubscribeToTopic", "*"},
    "aws.greengrass.ipc.mqttproxy": {
        "aws.greengrass#PublishToIoTCore", "aws.greengrass#SubscribeToIoTCore", "*"},
}
CROSS_COMPONENT_VARIABLE = re.compile(r"\{([.\w]+):([.\w]+):([^:}]+)}")
SYSTEM_VARIABLES = {"artifacts": {"path", "decompressedPath"}, "work": {"path"},
                    "kernel": {"rootPath"}, "iot": {"thingName"}}
PUBLISHED_KINDS = ("alert", "result", "correction", "batch", "status", "shadow", "feedback/response")
# Swapped in by the running program (over IPC): no lifecycle script may name them, or every model
# deployment would restart the component.
LIVE_MODEL_SETTINGS = ("inference/model", "inference/shadow_model")
SECRET_SHAPES = re.compile(
    r"(AKIA|ASIA)[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|aws_secret_access_key", re.I)


def key_paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from key_paths(v, prefix + (k,))
    else:
        yield prefix


def strings_in(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)
    elif isinstance(value, str):
        yield value


def policy_allows(resources: list[str], topic: str) -> bool:
    """Local pub/sub resource matching: `*` matches any characters, everything else is literal."""
    return any(re.fullmatch(".*".join(map(re.escape, r.split("*"))), topic) for r in resources)


def policies_for(recipe: dict, operation: str) -> list[str]:
    resources = []
    pubsub = default_configuration(recipe)["accessControl"]["aws.greengrass.ipc.pubsub"]
    for policy in pubsub.values():
        if operation in policy["operations"] or "*" in policy["operations"]:
            resources += policy["resources"]
    return resources


@pytest.fixture(scope="module")
def recipe() -> dict:
    return load_recipe()


@pytest.fixture(scope="module")
def gdk_config() -> dict:
    return json.loads(GDK_CONFIG.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- schemas

@pytest.mark.parametrize("schema_name",
                         ["gdk-cli_recipe_schema.json", "component-common_recipe_schema.json"])
def test_recipe_validates_against_official_schema(recipe, schema_name):
    assert schema_errors(schema(schema_name), lower_keys(recipe)) == []


def test_gdk_config_validates_against_official_schema(gdk_config):
    assert schema_errors(schema("gdk-cli_config_schema.json"), gdk_config) == []


def test_schemas_catch_a_broken_recipe_or_gdk_config(recipe, gdk_config):
    """Guard against a vacuous validation (e.g. keys not lower-cased, wrong draft)."""
    broken = json.loads(json.dumps(recipe))
    broken["RecipeFormatVersion"] = "2019-01-01"
    broken["Manifests"][0]["Artifacts"][0]["Unarchive"] = "TAR"
    broken["Manifests"][0]["Lifecycle"]["Install"]["RequiresPrivilege"] = 1
    errors = schema_errors(schema("component-common_recipe_schema.json"), lower_keys(broken))
    assert len(errors) >= 3, errors
    # a custom build without its command is what the schema's if/then exists for
    config = json.loads(json.dumps(gdk_config))
    del config["component"][COMPONENT]["build"]["custom_build_command"]
    assert schema_errors(schema("gdk-cli_config_schema.json"), config)


# ---------------------------------------------------------------- gdk-config.json

def test_gdk_config_settings(gdk_config, recipe):
    (name, component), = gdk_config["component"].items()
    assert name == COMPONENT == recipe["ComponentName"]
    assert component["author"] == "batchsight"
    assert component["version"] == "NEXT_PATCH"
    assert component["publish"] == {"bucket": "batchsight-components", "region": "us-east-1"}


def test_gdk_builds_the_artifact_from_an_include_list(gdk_config):
    """A custom build whose command names the artifact's content; gdk runs it in the project root
    without a shell, so the command is an argument list with paths relative to the root."""
    build = gdk_config["component"][COMPONENT]["build"]
    assert set(build) == {"build_system", "custom_build_command"}  # gdk ignores "options" here
    assert build["build_system"] == "custom"
    assert build["custom_build_command"] == [
        "python3", "component/build_artifact.py", *include_args(INCLUDES)]
    for include in INCLUDES:
        assert (ROOT / include).exists(), include


# ---------------------------------------------------------------- recipe: what the schemas miss

def test_recipe_header(recipe):
    assert recipe["RecipeFormatVersion"] == "2020-01-25"
    assert recipe["ComponentName"] == COMPONENT
    # the build overwrites version and publisher from gdk-config.json; the placeholders say so.
    assert recipe["ComponentVersion"] == "{COMPONENT_VERSION}"
    assert recipe["ComponentPublisher"] == "{COMPONENT_AUTHOR}"


def test_recipe_size_under_limit():
    # gdk refuses recipe files over 16,000 bytes (consts.MAX_RECIPE_FILE_SIZE_BYTES).
    assert RECIPE.stat().st_size < 16000


def test_token_exchange_dependency(recipe):
    dependency = recipe["ComponentDependencies"]["aws.greengrass.TokenExchangeService"]
    assert dependency["VersionRequirement"]
    # HARD: only a hard dependency makes the nucleus wait until TES runs before starting us.
    assert dependency["DependencyType"] == "HARD"


def test_lifecycle_step_names_and_keys(recipe):
    for manifest in recipe["Manifests"]:
        lifecycle = manifest["Lifecycle"]
        assert set(lifecycle) <= LIFECYCLE_KEYS, sorted(set(lifecycle) - LIFECYCLE_KEYS)
        assert not {"Startup", "Run"} <= set(lifecycle), "define only one of Startup or Run"
        for step_name, step in lifecycle.items():
            if step_name == "Setenv" or isinstance(step, str):
                continue
            assert set(step) <= STEP_KEYS, (step_name, sorted(set(step) - STEP_KEYS))
            assert "Script" in step, step_name
            # environment values are strings (a YAML number or boolean here is a mistake)
            assert all(isinstance(v, str) for v in step.get("Setenv", {}).values()), step_name


def test_no_lifecycle_step_requires_privilege(recipe):
    lifecycle = linux_manifest(recipe)["Lifecycle"]
    assert set(lifecycle) >= {"Install", "Run"}
    for step_name, step in lifecycle.items():
        if isinstance(step, dict) and step_name != "Setenv":
            assert step.get("RequiresPrivilege", False) in (False, "false"), step_name
    assert lifecycle["Run"]["RequiresPrivilege"] is False


def test_install_step(recipe):
    install = linux_manifest(recipe)["Lifecycle"]["Install"]
    assert install["Timeout"] == 600  # default 120 s is too short for pip on a small gateway
    script = install["Script"]
    assert "-m venv" in script and "{work:path}/venv" in script
    root = f"{{artifacts:decompressedPath}}/{COMPONENT}"
    assert f'-r "{root}/component/requirements.txt"' in script
    # the detector's numpy/onnxruntime only when an edge mode will run it
    assert 'if [ "{configuration:/inference/mode}" != cloud ]' in script
    assert f'-r "{root}/detector/requirements.txt"' in script


def test_run_step_starts_program_from_venv(recipe):
    run = linux_manifest(recipe)["Lifecycle"]["Run"]
    root = f"{{artifacts:decompressedPath}}/{COMPONENT}"
    assert run["Setenv"]["PYTHONPATH"] == f"{root}/component:{root}/detector"
    last_line = run["Script"].strip().splitlines()[-1]
    assert last_line == 'exec "{work:path}/venv/bin/python" -m batchsight run --greengrass'


def test_recipe_variables_resolve(recipe):
    """Every {namespace:key} in the lifecycle is one the nucleus knows; config pointers exist."""
    config = default_configuration(recipe)
    seen = set()
    for text in strings_in(recipe["Manifests"]):
        assert not CROSS_COMPONENT_VARIABLE.search(text), text
        for namespace, key in RECIPE_VARIABLE.findall(text):
            seen.add(namespace)
            if namespace == "configuration":
                resolve_pointer(config, key)
            else:
                assert key in SYSTEM_VARIABLES.get(namespace, ()), f"{{{namespace}:{key}}}"
    assert {"artifacts", "work", "configuration"} <= seen


def test_artifact_is_the_zip_the_build_writes(recipe):
    artifacts = linux_manifest(recipe)["Artifacts"]
    uri = f"s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/{ZIP_FILE}"
    assert artifacts == [{"URI": uri, "Unarchive": "ZIP"}]
    # A ZIP artifact unpacks to {artifacts:decompressedPath}/<zip name without .zip>/
    for text in strings_in(linux_manifest(recipe)["Lifecycle"]):
        for path in re.findall(r"\{artifacts:decompressedPath}/([^/\"\s]+)", text):
            assert path == COMPONENT


def test_access_control_shape(recipe):
    access = default_configuration(recipe)["accessControl"]
    assert set(access) == {"aws.greengrass.ipc.pubsub"}  # no IoT Core MQTT (mqttproxy) needed
    for service, policies in access.items():
        assert policies, service
        for policy_id, policy in policies.items():
            assert policy_id.startswith(f"{COMPONENT}:"), policy_id
            assert set(policy) == {"policyDescription", "operations", "resources"}, policy_id
            description, operations, resources = (policy["policyDescription"],
                                                  policy["operations"], policy["resources"])
            assert isinstance(description, str) and description.strip(), policy_id
            assert operations and set(operations) <= IPC_OPERATIONS[service], policy_id
            assert resources and all(isinstance(r, str) and r for r in resources), policy_id
            assert "*" not in policy["operations"] and "*" not in policy["resources"], "too broad"
            # In local pub/sub policies `+` and `#` are literal characters, not wildcards.
            assert not any(c in r for r in policy["resources"] for c in "+#"), policy_id


def test_access_control_covers_exactly_our_topics(recipe):
    config = program_configuration(recipe)
    prefix = "/".join([config["mqtt"]["topic_prefix"], config["site"], config["line"],
                       config["device"], "inspection"])
    publish = policies_for(recipe, "aws.greengrass#PublishToTopic")
    subscribe = policies_for(recipe, "aws.greengrass#SubscribeToTopic")
    for kind in PUBLISHED_KINDS:
        assert policy_allows(publish, f"{prefix}/{kind}"), kind
        assert not policy_allows(subscribe, f"{prefix}/{kind}"), kind
    assert policy_allows(subscribe, f"{prefix}/feedback")
    assert not policy_allows(publish, f"{prefix}/feedback")
    others = (f"{prefix}/other", "other/plant1/line1/gateway1/inspection/alert", "factory/alert")
    for topic in others:
        assert not policy_allows(publish + subscribe, topic), topic


def test_default_configuration_matches_documented_keys(recipe):
    config = program_configuration(recipe)
    documented = set(key_paths(DOCUMENTED_CONFIG))
    actual = set(key_paths(config))
    assert actual <= documented, f"undocumented keys: {sorted(actual - documented)}"
    assert documented <= actual, f"missing keys: {sorted(documented - actual)}"
    assert config == DOCUMENTED_CONFIG


def test_every_configuration_key_is_commented():
    """Each DefaultConfiguration key line carries a comment (the recipe is the reference)."""
    lines = RECIPE.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "DefaultConfiguration:")
    end = next(i for i, line in enumerate(lines) if line.strip() == "accessControl:")
    for line in lines[start + 1:end]:
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.endswith(":"):
            continue  # comment, blank, or a section header
        assert " # " in line, f"undocumented configuration line: {line!r}"


def test_default_configuration_is_accepted_by_the_program(recipe):
    """The program's own config model takes the recipe's defaults (cloud outputs filled in)."""
    sys.path.insert(0, str(ROOT / "component"))
    try:
        config_module = pytest.importorskip("batchsight.config")
    finally:
        sys.path.remove(str(ROOT / "component"))
    if not hasattr(config_module, "config_from_dict"):
        pytest.skip("batchsight.config.config_from_dict not available yet")
    data = json.loads(json.dumps(program_configuration(recipe)))
    data["aws"].update(source_bucket="src", final_bucket="final", state_machine_arn="arn:sm",
                       queue_url="https://sqs.us-east-1.amazonaws.com/123456789012/q")
    config = config_module.config_from_dict(data)
    assert config.site == data["site"]


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_run_script_writes_configuration_and_starts_program(recipe, tmp_path):
    """Run the Run step as the nucleus would (interpolated, `sh -c`, Setenv), stub venv python."""
    work = tmp_path / "work"
    (work / "venv" / "bin").mkdir(parents=True)
    stub = work / "venv" / "bin" / "python"
    stub.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$0.args"\n'
                    'printf "%s\\n%s\\n" "$PYTHONPATH" "$BATCHSIGHT_CONFIG" > "$0.env"\n')
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    system = device_paths(tmp_path)
    config = default_configuration(recipe)
    run = linux_manifest(recipe)["Lifecycle"]["Run"]
    env = dict(os.environ)
    env.update({k: interpolate(v, config, system) for k, v in run["Setenv"].items()})
    script = interpolate(run["Script"], config, system)
    result = subprocess.run(["sh", "-c", script], cwd=work, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    args = (work / "venv/bin/python.args").read_text().split()
    assert args == ["-m", "batchsight", "run", "--greengrass"]
    pythonpath, config_file = (work / "venv/bin/python.env").read_text().splitlines()
    root = f"{tmp_path}/unarchived/{COMPONENT}"
    assert pythonpath == f"{root}/component:{root}/detector"
    assert config_file == f"{work}/greengrass-config.yaml"
    expected = json.loads(json.dumps(program_configuration(recipe)))
    for pointer in LIVE_MODEL_SETTINGS:
        group, name = pointer.split("/")
        del expected[group][name]
    assert yaml.safe_load(Path(config_file).read_text()) == expected


def test_no_lifecycle_script_names_the_models_so_a_model_deployment_does_not_restart(recipe):
    """Greengrass restarts (and reinstalls) a component whose interpolated lifecycle changes; the
    models reach the program over IPC and are swapped in while it runs."""
    config = default_configuration(recipe)
    for text in strings_in(linux_manifest(recipe)["Lifecycle"]):
        for namespace, key in RECIPE_VARIABLE.findall(text):
            if namespace != "configuration":
                continue
            assert key.strip("/") not in ("", "inference"), f"{{configuration:{key}}} holds the models"
            assert key.strip("/") not in LIVE_MODEL_SETTINGS, f"{{configuration:{key}}}"
    changed = json.loads(json.dumps(config))
    changed["inference"].update(model="s3://models-bucket/models/castings/4/", shadow_model="/opt/m/5/")
    run = linux_manifest(recipe)["Lifecycle"]["Run"]
    system = device_paths(Path("/tmp/x"))
    assert interpolate(run["Script"], config, system) == interpolate(run["Script"], changed, system)
    install = linux_manifest(recipe)["Lifecycle"]["Install"]
    assert interpolate(install["Script"], config, system) == interpolate(install["Script"], changed, system)


# ---------------------------------------------------------------- requirements

def _pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    pins = dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))
    assert all(re.fullmatch(r"\d+(\.\d+)+", version) for version in pins.values()), pins
    return pins


def test_requirements_are_pinned_and_match_the_package():
    """The device installs exactly the package's runtime dependencies, each pinned."""
    import tomllib

    pins = _pins(REQUIREMENTS)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0] for requirement in declared}
    assert {name.lower() for name in pins} == {name.lower() for name in names}
    # the detector's file, installed into the same venv in the edge modes, is pinned too and
    # agrees with the gateway's on what both install
    detector = _pins(DETECTOR_REQUIREMENTS)
    lower = {name.lower(): version for name, version in pins.items()}
    for name, version in detector.items():
        assert lower.get(name.lower(), version) == version, name


def test_no_secrets_in_the_recipe_gdk_config_or_template(recipe):
    """Credentials come from the Token Exchange Service, broker secrets from a file the plant owns."""
    config = program_configuration(recipe)
    assert config["mqtt"]["password"] == "" and config["mqtt"]["password_file"] == ""
    assert config["mqtt"]["username"] == "" and config["mqtt"]["key_file"] == ""
    for path in (RECIPE, GDK_CONFIG, ROOT / "cloud" / "template.yaml", REQUIREMENTS):
        assert not SECRET_SHAPES.search(path.read_text(encoding="utf-8")), path
