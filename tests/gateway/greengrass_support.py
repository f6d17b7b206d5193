"""What the Greengrass packaging tests share: paths, the official schemas, recipe helpers, and the
build as gdk runs it.

No nucleus or gdk CLI can be installed here, so the recipe and gdk-config.json are validated against
the official JSON schemas (../shared/schemas/greengrass, Draft 7, recipe keys lower-cased first as
gdk's RecipeValidator does), and `gdk component build` is reproduced from its source (gdk 1.6.2,
gdk/commands/component/BuildCommand.py): for a custom build it empties greengrass-build/, creates
recipes/ and artifacts/<name>/<configured version>/, then runs custom_build_command as is in the
project root.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT.parent / "shared" / "schemas" / "greengrass"
RECIPE = ROOT / "recipe.yaml"
GDK_CONFIG = ROOT / "gdk-config.json"
REQUIREMENTS = ROOT / "component" / "requirements.txt"
DETECTOR_REQUIREMENTS = ROOT / "detector" / "requirements.txt"
BUILD_SCRIPT = ROOT / "component" / "build_artifact.py"
COMPONENT = "com.batchsight.EdgeInspector"
ZIP_FILE = f"{COMPONENT}.zip"  # the build names the zip after the component
# What the device gets, by name: the program, the detector it runs in the edge modes, and the
# requirements files the recipe's Install step reads.
INCLUDES = ("component/batchsight", "component/requirements.txt",
            "detector/batchsight_detector", "detector/requirements.txt")
RECIPE_VARIABLE = re.compile(r"\{([.\w]+):([^:}]+)}")


def include_args(includes=INCLUDES) -> list[str]:
    return [arg for include in includes for arg in ("--include", include)]


# ---------------------------------------------------------------- schemas

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
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(schema_doc)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


# ---------------------------------------------------------------- recipe

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


def device_paths(tmp_path: Path) -> dict[str, dict[str, str]]:
    """The nucleus' system variables for a component unpacked under tmp_path/unarchived."""
    return {"work": {"path": str(tmp_path / "work")},
            "artifacts": {"decompressedPath": str(tmp_path / "unarchived"),
                          "path": str(tmp_path / "artifacts")},
            "kernel": {"rootPath": str(tmp_path)}}


# ---------------------------------------------------------------- build

def run_build(script: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def gdk_build(root: Path) -> subprocess.CompletedProcess:
    """`gdk component build` for build_system "custom", as gdk 1.6.2 runs it."""
    config = json.loads((root / "gdk-config.json").read_text(encoding="utf-8"))
    (name, component), = config["component"].items()
    build = component["build"]
    assert build["build_system"] == "custom"
    gg_build = root / "greengrass-build"
    shutil.rmtree(gg_build, ignore_errors=True)
    (gg_build / "recipes").mkdir(parents=True)
    (gg_build / "artifacts" / name / component["version"]).mkdir(parents=True)
    return subprocess.run(build["custom_build_command"], cwd=root, capture_output=True, text=True,
                          timeout=120)


def zip_names(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()
