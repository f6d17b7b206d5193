"""Greengrass v2 packaging, the build: component/build_artifact.py as gdk's custom build command.

A fixture project (the real recipe, gdk-config.json and script, with a decoy for everything that
must stay off the device) is built the way gdk builds it; the real repository is built once and its
artifact unpacked as Greengrass unpacks it, then the recipe's Install and Run environments are used
on it for real.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.gateway.greengrass_support import (
    BUILD_SCRIPT, COMPONENT, DETECTOR_REQUIREMENTS, INCLUDES, REQUIREMENTS, ROOT, ZIP_FILE,
    default_configuration, device_paths, gdk_build, include_args, interpolate, linux_manifest,
    load_recipe, lower_keys, run_build, schema, schema_errors, zip_names,
)

FIXTURE_FILES = {  # archive name -> in the artifact?
    "component/batchsight/__init__.py": True,
    "component/batchsight/__main__.py": True,
    "component/batchsight/publishers/__init__.py": True,
    "component/batchsight/data/defaults.json": True,
    "detector/batchsight_detector/__init__.py": True,
    "detector/batchsight_detector/serve.py": True,
    "detector/batchsight_detector/features.onnx": True,
    "component/batchsight/__pycache__/config.cpython-311.pyc": False,
    "component/batchsight/stale.pyc": False,
    "component/batchsight/.editor.swp": False,
    "detector/batchsight_detector/.DS_Store": False,
    "component/batchsight.egg-info/PKG-INFO": False,
    "detector/README.md": False,
    "cloud/template.yaml": False,
    "cloud/functions/drain/app.py": False,
    "cloud/pipeline/batchsight_pipeline/__init__.py": False,
    "tools/batchsight_tools/__init__.py": False,
    "contracts/schemas/image_message.schema.json": False,
    "tests/gateway/test_x.py": False,
    "bench/bench.py": False,
    "batchsight.egg-info/PKG-INFO": False,
    ".git/HEAD": False,
    ".venv/bin/python": False,
    "README.md": False,
    "pyproject.toml": False,
}
FIXTURE_ARTIFACT = {name for name, shipped in FIXTURE_FILES.items() if shipped} | {
    "component/", "component/requirements.txt", "component/batchsight/",
    "component/batchsight/publishers/", "component/batchsight/data/",
    "detector/", "detector/requirements.txt", "detector/batchsight_detector/",
}
NEVER_SHIPPED = ("cloud/", "tools/", "tests/", "contracts/", "bench/")


def make_fixture_project(base: Path) -> Path:
    """A project laid out like the repository, with decoys next to every include."""
    root = base / "project"
    for source in (ROOT / "recipe.yaml", ROOT / "gdk-config.json", BUILD_SCRIPT, REQUIREMENTS,
                   DETECTOR_REQUIREMENTS):
        target = root / source.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    for rel in FIXTURE_FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x08\x01onnx" if rel.endswith(".onnx") else b"x = 1\n")
    (root / "greengrass-build" / "artifacts").mkdir(parents=True)  # a previous build output
    (root / "greengrass-build" / "artifacts" / "old.zip").write_text("x")
    return root


def built_zip(out: Path, version: str) -> Path:
    return out / "artifacts" / COMPONENT / version / ZIP_FILE


def shipped_sources(include: str) -> set[str]:
    """The files under an include of the real repository that the build must ship."""
    path = ROOT / include
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return {p.relative_to(ROOT).as_posix() for p in files
            if not any(part == "__pycache__" or part.startswith(".")
                       for part in p.relative_to(ROOT).parts) and p.suffix != ".pyc"}


@pytest.fixture(scope="module")
def real_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real repository built as for `gdk component publish --bucket my-bucket` of 0.1.0."""
    out = tmp_path_factory.mktemp("real") / "greengrass-build"
    result = run_build(BUILD_SCRIPT, *include_args(), "--version", "0.1.0",
                       "--bucket", "my-bucket", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def unpacked(real_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The device's side: tmp/unarchived/<zip stem>/ as Greengrass unpacks a ZIP artifact."""
    base = tmp_path_factory.mktemp("device")
    with zipfile.ZipFile(built_zip(real_build, "0.1.0")) as zf:
        zf.extractall(base / "unarchived" / COMPONENT)
    return base


# ---------------------------------------------------------------- the build, on a fixture project

def test_gdk_custom_build_of_a_fixture_project(tmp_path):
    """What `gdk component build` leaves: the zip in the folder gdk made for the configured version
    (publish uploads that folder) and recipes/recipe.yaml (the file publish reads)."""
    root = make_fixture_project(tmp_path)
    result = gdk_build(root)
    assert result.returncode == 0, result.stderr
    out = root / "greengrass-build"
    assert sorted(p.name for p in out.iterdir()) == ["artifacts", "recipes"]
    artifact = built_zip(out, "NEXT_PATCH")
    assert [p.name for p in artifact.parent.iterdir()] == [ZIP_FILE]
    assert set(zip_names(artifact)) == FIXTURE_ARTIFACT
    assert [p.name for p in (out / "recipes").iterdir()] == ["recipe.yaml"]
    built = load_recipe(out / "recipes" / "recipe.yaml")
    assert built["ComponentName"] == COMPONENT  # publish refuses a recipe of another component
    assert built["ComponentVersion"] == "NEXT_PATCH"  # publish sets the version it resolves
    assert built["ComponentPublisher"] == "batchsight"  # publish never sets it
    uri = built["Manifests"][0]["Artifacts"][0]["URI"]
    assert uri == f"s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/{ZIP_FILE}"


def test_build_with_version_and_bucket_resolves_the_recipe(tmp_path):
    root = make_fixture_project(tmp_path)
    result = run_build(root / "component" / "build_artifact.py", *include_args(),
                       "--version", "0.1.0", "--bucket", "my-bucket", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = root / "greengrass-build"
    assert set(zip_names(built_zip(out, "0.1.0"))) == FIXTURE_ARTIFACT
    built = load_recipe(out / "recipes" / "recipe.yaml")
    expected = load_recipe(root / "recipe.yaml")
    expected.update(ComponentVersion="0.1.0", ComponentPublisher="batchsight")
    expected["Manifests"][0]["Artifacts"][0]["URI"] = f"s3://my-bucket/{COMPONENT}/0.1.0/{ZIP_FILE}"
    assert built == expected
    assert schema_errors(schema("component-common_recipe_schema.json"), lower_keys(built)) == []
    # comments survive (gdk's YAML dump would drop them; the content is the same)
    assert "# site id" in (out / "recipes" / "recipe.yaml").read_text()


def test_build_is_deterministic(tmp_path):
    root = make_fixture_project(tmp_path)
    script = root / "component" / "build_artifact.py"
    artifact = built_zip(root / "greengrass-build", "0.1.0")
    assert run_build(script, *include_args(), "--version", "0.1.0").returncode == 0
    first = artifact.read_bytes()
    for path in root.rglob("*.py"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    # the same includes in another order, one of them spelled differently
    includes = ["./" + INCLUDES[-1], *reversed(INCLUDES[:-1])]
    assert run_build(script, *include_args(includes), "--version", "0.1.0").returncode == 0
    assert artifact.read_bytes() == first
    with zipfile.ZipFile(artifact) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644, 0o040755}


@pytest.mark.parametrize("include", ["detector/batchsight_detectr", "/etc/hostname",
                                     "../project/component/batchsight", "component/.hidden"])
def test_a_bad_include_is_a_one_line_usage_error(tmp_path, include):
    root = make_fixture_project(tmp_path)
    result = run_build(root / "component" / "build_artifact.py",
                       *include_args([*INCLUDES, include]))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("build_artifact: error: include ")
    assert repr(include) in result.stderr
    # nothing was touched: the previous build output is still there
    assert (root / "greengrass-build" / "artifacts" / "old.zip").is_file()


def test_build_refuses_bad_input(tmp_path):
    root = make_fixture_project(tmp_path)
    script = root / "component" / "build_artifact.py"
    # no include at all: argparse's usage error
    assert run_build(script).returncode == 2
    # --bucket needs a concrete version: gdk publish resolves NEXT_PATCH against the account
    for args in (["--bucket", "b"], ["--version", "latest"], ["--out", "component/batchsight"]):
        result = run_build(script, *include_args(), *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, (args, result.stderr)
    # an include list that leaves out a file the recipe uses on the device
    result = run_build(script, *include_args(INCLUDES[:-1]), "--version", "0.1.0")
    assert result.returncode == 1 and "detector/requirements.txt" in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    # an output folder that is not a build output is never deleted
    (root / "docs").mkdir()
    (root / "docs" / "keep.md").write_text("x")
    result = run_build(script, *include_args(), "--version", "0.1.0", "--out", "docs")
    assert result.returncode == 1 and (root / "docs" / "keep.md").exists()


# ---------------------------------------------------------------- the real artifact

def test_real_artifact_holds_exactly_the_includes(real_build):
    names = zip_names(built_zip(real_build, "0.1.0"))
    files = {name for name in names if not name.endswith("/")}
    expected = set().union(*(shipped_sources(include) for include in INCLUDES))
    assert files == expected, sorted(files ^ expected)
    assert {name for name in names if name.endswith("/")} >= {
        "component/", "component/batchsight/", "detector/", "detector/batchsight_detector/"}
    assert any(name.startswith("detector/batchsight_detector/") and name.endswith(".onnx")
               for name in files)
    assert "component/batchsight/__main__.py" in files
    for name in names:
        assert name.startswith(tuple(f"{include}/" for include in INCLUDES) + INCLUDES) \
            or name in ("component/", "detector/"), name
        assert not name.startswith(NEVER_SHIPPED), name
        assert not name.endswith((".pyc", "build_artifact.py")) and "__pycache__" not in name, name
        assert not any(part.startswith(".") for part in name.split("/")), name


def test_real_build_recipe_names_the_zip(real_build):
    path = real_build / "recipes" / "recipe.yaml"
    built = load_recipe(path)
    uri = built["Manifests"][0]["Artifacts"][0]["URI"]
    assert uri == f"s3://my-bucket/{COMPONENT}/0.1.0/{ZIP_FILE}"
    assert uri.rsplit("/", 1)[-1] == built_zip(real_build, "0.1.0").name
    assert built["ComponentVersion"] == "0.1.0"
    assert schema_errors(schema("gdk-cli_recipe_schema.json"), lower_keys(built)) == []
    assert path.stat().st_size < 16000


STUB_VENV_PYTHON = """#!/bin/sh
# the venv's python: `-c ...` (is the venv usable?) succeeds, so Install reuses the venv;
# `-m pip install ... -r FILE` logs FILE and fails unless it is a file
[ "$1" = -c ] && exit 0
for last; do :; done
printf '%s\\n' "$last" >> "$0.log"
[ -f "$last" ]
"""


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
@pytest.mark.parametrize("mode", ["cloud", "edge", "edge-first"])
def test_install_step_runs_on_the_unpacked_artifact(real_build, unpacked, tmp_path, mode):
    """The Install script, interpolated, under `sh -c` with the real python3 check, finds every
    requirements file it installs in the artifact (pip itself stubbed: no network here)."""
    recipe = load_recipe(real_build / "recipes" / "recipe.yaml")
    work = tmp_path / "work"
    (work / "venv" / "bin").mkdir(parents=True)
    stub = work / "venv" / "bin" / "python"
    stub.write_text(STUB_VENV_PYTHON)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    system = device_paths(unpacked)
    system["work"]["path"] = str(work)
    config = json.loads(json.dumps(default_configuration(recipe)))
    config["inference"]["mode"] = mode
    script = interpolate(linux_manifest(recipe)["Lifecycle"]["Install"]["Script"], config, system)
    result = subprocess.run(["sh", "-c", script], cwd=work, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    installed = (work / "venv/bin/python.log").read_text().splitlines()
    root = unpacked / "unarchived" / COMPONENT
    expected = [root / "component/requirements.txt"]
    if mode != "cloud":
        expected.append(root / "detector/requirements.txt")
    assert installed == [str(path) for path in expected]


def test_artifact_serves_the_detector_for_the_edge_modes(unpacked, real_build, tmp_path,
                                                         fitted_model):
    """Unpacked as Greengrass unpacks it, with the Run step's PYTHONPATH, `serve` answers /ping."""
    import time
    import urllib.request

    from batchsight_tools.localcloud.stack import free_port

    recipe = load_recipe(real_build / "recipes" / "recipe.yaml")
    run = linux_manifest(recipe)["Lifecycle"]["Run"]
    pythonpath = interpolate(run["Setenv"]["PYTHONPATH"], default_configuration(recipe),
                             device_paths(unpacked))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    where = subprocess.run([sys.executable, "-c",
                            "import batchsight_detector.serve as s; print(s.__file__)"],
                           env=env, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(unpacked)), f"serve must come from the artifact, came from {where}"
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "batchsight_detector.serve",
                               "--model", str(fitted_model), "--port", str(port)],
                              env=env, cwd=tmp_path)
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
