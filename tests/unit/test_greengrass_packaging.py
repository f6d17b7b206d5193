"""Greengrass v2 packaging: recipe.yaml, gdk-config.json, component/requirements.txt and
component/build_artifact.py.

No nucleus or gdk CLI can be installed here, so the recipe and the gdk configuration are validated
against the official JSON schemas (../shared/schemas/greengrass, Draft 7, recipe keys lower-cased
first as gdk's RecipeValidator does), and the rest is checked by hand: what the schemas miss
(lifecycle step names, accessControl shape, recipe variables, artifact name = zip name, size limit)
and what the build script produces.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "schemas" / "greengrass"
RECIPE = ROOT / "recipe.yaml"
GDK_CONFIG = ROOT / "gdk-config.json"
REQUIREMENTS = ROOT / "component" / "requirements.txt"
BUILD_SCRIPT = ROOT / "component" / "build_artifact.py"
COMPONENT = "com.batchsight.EdgeInspector"
ZIP_FILE = f"{COMPONENT}.zip"

# The documented configuration (the YAML file of `run --config` = the DefaultConfiguration):
# the program's own defaults, so the recipe cannot drift from what the program accepts.
def _documented_config() -> dict:
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
# Recipe variables the nucleus interpolates: namespace -> keys ("configuration": a JSON pointer).
RECIPE_VARIABLE = re.compile(r"\{([.\w]+):([^:}]+)}")
CROSS_COMPONENT_VARIABLE = re.compile(r"\{([.\w]+):([.\w]+):([^:}]+)}")
SYSTEM_VARIABLES = {"artifacts": {"path", "decompressedPath"}, "work": {"path"},
                    "kernel": {"rootPath"}, "iot": {"thingName"}}
PUBLISHED_KINDS = ("alert", "result", "correction", "batch", "status", "feedback/response")
FORBIDDEN_IN_ARTIFACT = re.compile(
    r"(^|/)(tests|bench|\.git|\.venv|venv|__pycache__|\.pytest_cache)(/|$)")
# From cloud/ the artifact carries only the detector, which `batchsight serve` runs in the edge modes.
DETECTOR_IN_ARTIFACT = "cloud/src/batchsight_cloud/detector/"


# ---------------------------------------------------------------- helpers

def lower_keys(value):
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def schema(name: str) -> dict:
    path = SCHEMA_DIR / name
    if not path.is_file():
        pytest.skip(f"official Greengrass schema not available: {path} "
                    "(expected in ../shared/schemas/greengrass next to the repository)")
    return json.loads(path.read_text(encoding="utf-8"))


def schema_errors(schema_doc: dict, document) -> list[str]:
    validator = jsonschema.Draft7Validator(schema_doc)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


def load_recipe(path: Path = RECIPE) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def linux_manifest(recipe: dict) -> dict:
    manifests = [m for m in recipe["Manifests"] if m.get("Platform", {}).get("os") == "linux"]
    assert len(manifests) == 1, "expected exactly one Linux manifest"
    return manifests[0]


def default_configuration(recipe: dict) -> dict:
    return recipe["ComponentConfiguration"]["DefaultConfiguration"]


def program_configuration(recipe: dict) -> dict:
    return {k: v for k, v in default_configuration(recipe).items() if k != "accessControl"}


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


def resolve_pointer(document, pointer: str):
    node = document
    for token in pointer.lstrip("/").split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or token not in node:
            raise KeyError(pointer)
        node = node[token]
    return node


def interpolate(text: str, config: dict, system: dict[str, dict[str, str]]) -> str:
    """What the nucleus does to a lifecycle string: value nodes as text, objects as JSON."""
    def repl(match: re.Match) -> str:
        namespace, key = match.group(1), match.group(2)
        if namespace == "configuration":
            node = resolve_pointer(config, key)
            if isinstance(node, (dict, list)):
                return json.dumps(node, separators=(",", ":"), sort_keys=True)
            if isinstance(node, bool):
                return "true" if node else "false"
            return "null" if node is None else str(node)
        return system[namespace][key]
    return RECIPE_VARIABLE.sub(repl, text)


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


def run_build(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args],
                          capture_output=True, text=True, timeout=120)


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def recipe() -> dict:
    return load_recipe()


@pytest.fixture(scope="module")
def gdk_config() -> dict:
    return json.loads(GDK_CONFIG.read_text(encoding="utf-8"))


def make_fixture_project(base: Path) -> Path:
    """A project laid out like the repo, with one decoy for every exclude."""
    root = base / "project"
    (root / "component").mkdir(parents=True)
    for name in ("recipe.yaml", "gdk-config.json"):
        shutil.copy(ROOT / name, root / name)
    shutil.copy(BUILD_SCRIPT, root / "component" / "build_artifact.py")
    shutil.copy(REQUIREMENTS, root / "component" / "requirements.txt")
    files = {
        "component/batchsight/__init__.py": "",
        "component/batchsight/__main__.py": "raise SystemExit(0)\n",
        "component/batchsight/schemas/result.json": "{}\n",
        "README.md": "# batchsight\n",
        "LICENSE": "MIT-0\n",
        "cloud/src/batchsight_cloud/detector/serve.py": "x",  # the edge modes' detector
        # everything below must stay out of the artifact
        "component/batchsight/__pycache__/config.cpython-311.pyc": "x",
        "component/batchsight/stale.pyc": "x",
        "component/batchsight/.editor.swp": "x",
        "component/batchsight.egg-info/PKG-INFO": "x",
        "tests/unit/test_x.py": "x",
        "cloud/src/handler.py": "x",
        "cloud/src/requirements.txt": "x",
        "cloud/template.yaml": "x",
        "cloud/statemachine/pipeline.asl.json": "x",
        "cloud/src/batchsight_cloud/__init__.py": "x",
        "cloud/src/batchsight_cloud/handlers/drain.py": "x",
        "cloud/src/batchsight_cloud/local/stack.py": "x",
        "bench/bench.py": "x",
        ".git/HEAD": "x",
        ".gitignore": "x",
        ".venv/bin/python": "x",
        "venv/lib/site.py": "x",
        ".pytest_cache/v/cache": "x",
        ".ci/run.sh": "x",
        ".demo/state": "x",
        "zip-build/project/stale.txt": "x",
        "pyproject.toml": "x",
        "build/lib/x.py": "x",
        "dist/x.whl": "x",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "greengrass-build" / "artifacts").mkdir(parents=True)  # a previous build output
    (root / "greengrass-build" / "artifacts" / "old.zip").write_text("x")
    return root


FIXTURE_ARTIFACT = {
    "LICENSE", "README.md", "component/", "component/requirements.txt", "component/batchsight/",
    "component/batchsight/__init__.py", "component/batchsight/__main__.py",
    "component/batchsight/schemas/", "component/batchsight/schemas/result.json",
    "cloud/", "cloud/src/", "cloud/src/batchsight_cloud/", "cloud/src/batchsight_cloud/detector/",
    "cloud/src/batchsight_cloud/detector/serve.py",
}


# ---------------------------------------------------------------- schemas

@pytest.mark.parametrize("schema_name",
                         ["gdk-cli_recipe_schema.json", "component-common_recipe_schema.json"])
def test_recipe_validates_against_official_schema(recipe, schema_name):
    assert schema_errors(schema(schema_name), lower_keys(recipe)) == []


def test_gdk_config_validates_against_official_schema(gdk_config):
    assert schema_errors(schema("gdk-cli_config_schema.json"), gdk_config) == []


def test_schemas_catch_a_broken_recipe(recipe):
    """Guard against a vacuous validation (e.g. keys not lower-cased, wrong draft)."""
    broken = json.loads(json.dumps(recipe))
    broken["RecipeFormatVersion"] = "2019-01-01"
    broken["Manifests"][0]["Artifacts"][0]["Unarchive"] = "TAR"
    broken["Manifests"][0]["Lifecycle"]["Install"]["RequiresPrivilege"] = 1
    errors = schema_errors(schema("component-common_recipe_schema.json"), lower_keys(broken))
    assert len(errors) >= 3, errors


# ---------------------------------------------------------------- gdk-config.json

def test_gdk_config_settings(gdk_config, recipe):
    (name, component), = gdk_config["component"].items()
    assert name == COMPONENT == recipe["ComponentName"]
    assert component["author"] == "batchsight"
    assert component["version"] == "NEXT_PATCH"
    assert component["publish"] == {"bucket": "batchsight-components", "region": "us-east-1"}
    build = component["build"]
    assert build["build_system"] == "zip"
    # "" names the archive after the component (absent: after the project folder).
    assert build["options"]["zip_name"] == ""


def test_gdk_excludes_are_explicit(gdk_config):
    """An options block switches gdk's default excludes off: every unwanted path is listed."""
    excludes = set(gdk_config["component"][COMPONENT]["build"]["options"]["excludes"])
    required = {"tests", "cloud/*.yaml", "cloud/statemachine", "cloud/src/batchsight_cloud/*.py",
                "cloud/src/batchsight_cloud/handlers", "cloud/src/batchsight_cloud/local", "bench", ".git", ".venv", "venv", ".pytest_cache", ".ci", ".demo",
                "greengrass-build", "zip-build", "component/build_artifact.py",
                "**/__pycache__", "**/*.pyc", "**/.*"}
    assert required <= excludes, sorted(required - excludes)
    # gdk >= 1.5 warns when no pattern holds a '/' (old fnmatch-style excludes).
    assert any("/" in pattern for pattern in excludes)


# ---------------------------------------------------------------- recipe: what the schemas miss

def test_recipe_header(recipe):
    assert recipe["RecipeFormatVersion"] == "2020-01-25"
    assert recipe["ComponentName"] == COMPONENT
    # gdk overwrites version and publisher from gdk-config.json; the placeholders say so.
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
    assert f"-r \"{{artifacts:decompressedPath}}/{COMPONENT}/component/requirements.txt\"" in script
    # the detector's numpy/onnxruntime only when an edge mode will run it
    assert 'if [ "{configuration:/inference/mode}" != cloud ]' in script
    assert "component/requirements-detector.txt" in script


def test_run_step_starts_program_from_venv(recipe):
    run = linux_manifest(recipe)["Lifecycle"]["Run"]
    root = f"{{artifacts:decompressedPath}}/{COMPONENT}"
    assert run["Setenv"]["PYTHONPATH"] == f"{root}/component:{root}/cloud/src"  # cloud/src: the detector only
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


def test_artifact_is_the_zip_gdk_builds(recipe, gdk_config):
    options = gdk_config["component"][COMPONENT]["build"]["options"]
    zip_stem = options["zip_name"] or COMPONENT  # zip_name "" -> named after the component
    artifacts = linux_manifest(recipe)["Artifacts"]
    uri = f"s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/{zip_stem}.zip"
    assert artifacts == [{"URI": uri, "Unarchive": "ZIP"}]
    # A ZIP artifact unpacks to {artifacts:decompressedPath}/<zip name without .zip>/
    for text in strings_in(linux_manifest(recipe)["Lifecycle"]):
        for path in re.findall(r"\{artifacts:decompressedPath}/([^/\"\s]+)", text):
            assert path == zip_stem


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
    system = {"work": {"path": str(work)},
              "artifacts": {"decompressedPath": str(tmp_path / "unarchived"),
                            "path": str(tmp_path / "artifacts")},
              "kernel": {"rootPath": str(tmp_path)}}
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
    assert pythonpath == f"{root}/component:{root}/cloud/src"
    assert config_file == f"{work}/greengrass-config.yaml"
    assert yaml.safe_load(Path(config_file).read_text()) == program_configuration(recipe)


# ---------------------------------------------------------------- requirements

def test_requirements_are_pinned_and_match_the_package():
    """The device installs exactly the package's runtime dependencies, each pinned."""
    import tomllib

    lines = [line.strip() for line in REQUIREMENTS.read_text().splitlines()]
    pins = dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))
    assert all(re.fullmatch(r"\d+(\.\d+)+", version) for version in pins.values()), pins
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ]", requirement, maxsplit=1)[0] for requirement in declared}
    assert {name.lower() for name in pins} == {name.lower() for name in names}


# ---------------------------------------------------------------- build_artifact.py

def test_build_fixture_project_with_version_and_bucket(tmp_path):
    root = make_fixture_project(tmp_path)
    result = run_build(root / "component" / "build_artifact.py",
                       "--version", "0.1.0", "--bucket", "my-bucket")
    assert result.returncode == 0, result.stderr
    out = root / "greengrass-build"
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "recipes"]
    artifact = out / "artifacts" / COMPONENT / "0.1.0" / ZIP_FILE
    assert [p.name for p in artifact.parent.iterdir()] == [ZIP_FILE]
    assert set(zip_names(artifact)) == FIXTURE_ARTIFACT

    built = load_recipe(out / "recipes" / "recipe.yaml")
    expected = load_recipe(root / "recipe.yaml")
    expected.update(ComponentVersion="0.1.0", ComponentPublisher="batchsight")
    expected["Manifests"][0]["Artifacts"][0]["URI"] = f"s3://my-bucket/{COMPONENT}/0.1.0/{ZIP_FILE}"
    assert built == expected
    assert schema_errors(schema("component-common_recipe_schema.json"), lower_keys(built)) == []
    # comments survive (gdk's YAML dump would drop them; the content is the same)
    assert "# site id" in (out / "recipes" / "recipe.yaml").read_text()


def test_build_without_flags_is_gdk_build(tmp_path):
    """gdk build uses the configured version verbatim (NEXT_PATCH) and leaves URI placeholders."""
    root = make_fixture_project(tmp_path)
    result = run_build(root / "component" / "build_artifact.py")
    assert result.returncode == 0, result.stderr
    artifact = root / "greengrass-build" / "artifacts" / COMPONENT / "NEXT_PATCH" / ZIP_FILE
    assert set(zip_names(artifact)) == FIXTURE_ARTIFACT
    built = load_recipe(root / "greengrass-build" / "recipes" / "recipe.yaml")
    assert built["ComponentVersion"] == "NEXT_PATCH"
    assert built["ComponentPublisher"] == "batchsight"
    uri = built["Manifests"][0]["Artifacts"][0]["URI"]
    assert uri == f"s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/{ZIP_FILE}"
    assert uri.rsplit("/", 1)[-1] == artifact.name


def test_build_matches_a_copytree_and_make_archive_build(tmp_path):
    """Same members as gdk's way: copy the root minus the globbed excludes, then make_archive."""
    root = make_fixture_project(tmp_path)
    assert run_build(root / "component" / "build_artifact.py", "--version", "1.2.3").returncode == 0
    ours = root / "greengrass-build" / "artifacts" / COMPONENT / "1.2.3" / ZIP_FILE

    config = json.loads((root / "gdk-config.json").read_text())
    patterns = ["gdk-config.json", "greengrass-build", "recipe.yaml"]
    patterns += config["component"][COMPONENT]["build"]["options"]["excludes"]
    unwanted = set()
    for pattern in patterns:
        unwanted |= set(glob.glob(f"{root}{os.sep}{pattern}", recursive=True))

    def ignore(directory, names):
        return {n for n in names if os.path.join(directory, n) in unwanted
                or os.path.join(directory, n) + os.sep in unwanted}

    copy = tmp_path / "copy" / root.name
    shutil.copytree(root, copy, ignore=ignore)
    reference = shutil.make_archive(str(tmp_path / "reference" / COMPONENT), "zip", root_dir=copy)
    assert sorted(zip_names(ours)) == sorted(zip_names(Path(reference)))


def test_build_is_deterministic(tmp_path):
    root = make_fixture_project(tmp_path)
    script = root / "component" / "build_artifact.py"
    artifact = root / "greengrass-build" / "artifacts" / COMPONENT / "0.1.0" / ZIP_FILE
    assert run_build(script, "--version", "0.1.0").returncode == 0
    first = artifact.read_bytes()
    for path in root.rglob("*.py"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    assert run_build(script, "--version", "0.1.0").returncode == 0
    assert artifact.read_bytes() == first
    with zipfile.ZipFile(artifact) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_build_refuses_bad_input(tmp_path):
    root = make_fixture_project(tmp_path)
    script = root / "component" / "build_artifact.py"
    # --bucket needs a concrete version: gdk publish resolves NEXT_PATCH against the account
    assert run_build(script, "--bucket", "b").returncode == 1
    assert run_build(script, "--version", "latest").returncode == 1
    # an output folder that is not a build output is never deleted
    (root / "docs").mkdir()
    (root / "docs" / "keep.md").write_text("x")
    result = run_build(script, "--version", "0.1.0", "--out", "docs")
    assert result.returncode == 1 and (root / "docs" / "keep.md").exists()


def test_build_real_repository(tmp_path):
    if not (ROOT / "component" / "batchsight" / "__main__.py").is_file():
        pytest.skip("component/batchsight/__main__.py not written yet")
    out = tmp_path / "greengrass-build"
    result = run_build(BUILD_SCRIPT, "--version", "0.1.0", "--bucket", "my-bucket",
                       "--out", str(out))
    assert result.returncode == 0, result.stderr
    artifact = out / "artifacts" / COMPONENT / "0.1.0" / ZIP_FILE
    names = zip_names(artifact)
    assert "component/batchsight/__main__.py" in names
    assert "component/requirements.txt" in names
    for name in names:
        top = name.split("/", 1)[0]
        assert (top == "component" or name.startswith(DETECTOR_IN_ARTIFACT) or DETECTOR_IN_ARTIFACT.startswith(name)
                or re.fullmatch(r"(README|LICENSE|NOTICE)[^/]*", top)), name
        assert not FORBIDDEN_IN_ARTIFACT.search(name), name
        assert not name.endswith((".pyc", "build_artifact.py")) and "egg-info" not in name, name
    # every source file of the program is shipped
    sources = {p.relative_to(ROOT).as_posix()
               for p in (ROOT / "component" / "batchsight").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
               and not any(part.startswith(".") for part in p.relative_to(ROOT).parts)}
    assert sources <= set(names), sorted(sources - set(names))
    # the build recipe names that zip and validates
    built = load_recipe(out / "recipes" / "recipe.yaml")
    uri = built["Manifests"][0]["Artifacts"][0]["URI"]
    assert uri == f"s3://my-bucket/{COMPONENT}/0.1.0/{ZIP_FILE}"
    assert built["ComponentVersion"] == "0.1.0"
    assert schema_errors(schema("gdk-cli_recipe_schema.json"), lower_keys(built)) == []
    assert (out / "recipes" / "recipe.yaml").stat().st_size < 16000


def test_artifact_serves_the_detector_for_the_edge_modes(tmp_path, fitted_model):
    """Unpacked as Greengrass unpacks it, with the Run step's PYTHONPATH, `serve` answers /ping."""
    import time
    import urllib.request

    from batchsight_cloud.local.stack import free_port

    out = tmp_path / "greengrass-build"
    assert run_build(BUILD_SCRIPT, "--version", "0.1.0", "--out", str(out)).returncode == 0
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(out / "artifacts" / COMPONENT / "0.1.0" / ZIP_FILE).extractall(unpacked)
    assert (unpacked / "component/requirements-detector.txt").is_file()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{unpacked / 'component'}:{unpacked / 'cloud' / 'src'}"}
    where = subprocess.run([sys.executable, "-c", "import batchsight_cloud.detector.serve as s; print(s.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(unpacked)), f"serve must come from the artifact, came from {where}"
    server = subprocess.Popen([sys.executable, "-m", "batchsight_cloud.detector.serve", "--model", str(fitted_model),
                               "--port", str(port)], env=env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    assert json.loads(response.read())["status"] == "healthy"
                    break
            except OSError:
                assert server.poll() is None, "serve exited"
                assert time.monotonic() < deadline, "serve did not answer /ping"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(10)


SECRET_SHAPES = re.compile(r"(AKIA|ASIA)[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|aws_secret_access_key", re.I)


def test_no_secrets_in_the_recipe_gdk_config_or_template(recipe):
    """Credentials come from the Token Exchange Service, broker secrets from a file the plant owns."""
    config = program_configuration(recipe)
    assert config["mqtt"]["password"] == "" and config["mqtt"]["password_file"] == ""
    assert config["mqtt"]["username"] == "" and config["mqtt"]["key_file"] == ""
    for path in (RECIPE, GDK_CONFIG, ROOT / "cloud" / "template.yaml", ROOT / "component" / "requirements.txt"):
        assert not SECRET_SHAPES.search(path.read_text(encoding="utf-8")), path
