"""What each deployable weighs: every Lambda function's code package and layers, and the
Greengrass artifact, built for real.

    python bench/package_sizes.py

Runs `sam build` on cloud/template.yaml (aws-sam-cli from PATH or .tools/sam-venv, which the
test suite installs) and the gateway's own build command from gdk-config.json, then prints one
row per function (its package and the layers it names, unzipped: Lambda's limit is 250 MB for
the two together) and one for the Greengrass artifact (files, unzipped, zipped). Sizes are
bytes on disk of the built files, so a run on any machine gives the same figures for the same
sources and pins.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import yaml

from batchsight_tools.bench.heading import heading

REPO = Path(__file__).resolve().parents[1]  # a bench script of this checkout, not an installed tool
LAMBDA_LIMIT = 250 * 1024 * 1024


def _sam() -> str:
    found = shutil.which("sam") or str(REPO / ".tools" / "sam-venv" / "bin" / "sam")
    if not Path(found).exists():
        raise SystemExit("aws-sam-cli not found: pip install aws-sam-cli, or run the tests once "
                         "(they install it into .tools/sam-venv)")
    return found


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@dataclass(frozen=True)
class FunctionPackage:
    function: str
    files: list[str]
    package_bytes: int
    layers: list[str]
    with_layers_bytes: int


@dataclass(frozen=True)
class Artifact:
    files: int
    unzipped_bytes: int
    zip_bytes: int


def lambda_packages(out: Path) -> list[FunctionPackage]:
    """sam build into ``out``; one row per function: its package and its layers, unzipped."""
    subprocess.run([_sam(), "build", "--build-dir", str(out)], cwd=REPO / "cloud", check=True,
                   capture_output=True, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1",
                                             "SAM_CLI_TELEMETRY": "0"})
    template = yaml.safe_load((out / "template.yaml").read_text())
    global_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    rows = []
    for name, resource in sorted(template["Resources"].items()):
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        layers = [layer_name for layer in resource["Properties"].get("Layers", global_layers)
                  if (layer_name := _layer(layer, template)) != "AWS::NoValue"]
        own = _size(out / name)
        shared = sum(_size(out / layer) for layer in layers)
        rows.append(FunctionPackage(name, sorted(p.name for p in (out / name).iterdir()), own, layers, own + shared))
    return rows


def _layer(entry: dict[str, Any], template: dict[str, Any]) -> str:
    """A function's layer as the stack deploys it with the template's default parameters: a ``Ref``,
    or an ``Fn::If`` on a condition (the DetectorLayer goes with the default ``lambda`` backend)."""
    if "Fn::If" not in entry:
        return str(entry["Ref"])
    condition, then, otherwise = entry["Fn::If"]
    return _layer(then if _holds(template["Conditions"][condition], template) else otherwise, template)


def _holds(condition: dict[str, Any], template: dict[str, Any]) -> bool:
    """An ``Fn::Equals`` of a parameter and a value, with the parameter's default."""
    left, right = condition["Fn::Equals"]
    return str(template["Parameters"][left["Ref"]].get("Default")) == str(right)


def greengrass_artifact(out: Path) -> Artifact:
    """The gateway's build command from gdk-config.json, run with the output in ``out``."""
    config = json.loads((REPO / "gdk-config.json").read_text())
    (component,) = config["component"].values()
    command = [sys.executable if part.startswith("python") else part
               for part in component["build"]["custom_build_command"]]
    subprocess.run([*command, "--out", str(out), "--version", "1.0.0"], cwd=REPO, check=True,
                   capture_output=True)
    (archive,) = out.glob("artifacts/*/1.0.0/*.zip")
    with zipfile.ZipFile(archive) as opened:
        files = [i for i in opened.infolist() if not i.is_dir()]
    return Artifact(len(files), sum(i.file_size for i in files), archive.stat().st_size)


def _mb(size: int) -> str:
    return f"{size / 1e3:.1f} kB" if size < 1e6 else f"{size / 1e6:.2f} MB"


def table(functions: list[FunctionPackage], artifact: Artifact) -> str:
    lines = [heading(), "",
             "| deployable | its own package | with the layers it names (limit 250 MB) |",
             "|---|---|---|"]
    for row in functions:
        lines.append(f"| {row.function} | {_mb(row.package_bytes)} ({', '.join(row.files)}) "
                     f"| {_mb(row.with_layers_bytes)} ({', '.join(row.layers)}) |")
    lines.append(f"| Greengrass artifact | {artifact.files} files, {_mb(artifact.unzipped_bytes)} "
                 f"unzipped, {_mb(artifact.zip_bytes)} zipped | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="batchsight-sizes-") as work:
        functions = lambda_packages(Path(work) / "sam")
        artifact = greengrass_artifact(Path(work) / "greengrass")
    too_big = [r.function for r in functions if r.with_layers_bytes > LAMBDA_LIMIT]
    print(table(functions, artifact))
    if too_big:
        print(f"over Lambda's 250 MB unzipped limit: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
