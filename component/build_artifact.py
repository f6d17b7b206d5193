#!/usr/bin/env python3
"""Build the Greengrass artifact and recipe of the batchsight edge component (gdk's custom build).

    python3 component/build_artifact.py --include component/batchsight \\
        --include component/requirements.txt --include detector/batchsight_detector \\
        --include detector/requirements.txt [--version 1.0.0] [--bucket B] [--out DIR]

gdk-config.json runs this command as its "custom" build, so the artifact holds exactly the paths
named by --include (a file, or a folder taken recursively) and nothing else: a new folder in the
project stays off the devices until someone names it, instead of shipping until someone excludes it.

What gdk does for a custom build (aws-greengrass-gdk-cli 1.6.2, gdk/commands/component/
BuildCommand.py, gdk/common/config/GDKProject.py): `gdk component build` deletes greengrass-build/,
creates greengrass-build/recipes/ and greengrass-build/artifacts/<ComponentName>/<version>/ (the
gdk-config.json "version" as written: NEXT_PATCH stays NEXT_PATCH), then runs custom_build_command
as is (subprocess without a shell, in gdk's working directory, which must be the project root since
gdk reads ./gdk-config.json) and fails when it exits non-zero. Nothing else: it neither rewrites nor
validates the recipe and resolves no version. `gdk component publish` (PublishCommand.py,
PublishRecipeTransformer.py) then uploads every file of that artifacts folder to
s3://<bucket>/<ComponentName>/<resolved version>/, reads greengrass-build/recipes/<recipe file name>,
refuses it unless its ComponentName is the component's, sets ComponentVersion, rewrites the s3://
URIs whose file is in the artifacts folder, and checks size and schema. It never sets
ComponentPublisher.

So this script writes what gdk's zip build used to write:

    <out>/artifacts/<ComponentName>/<version>/<ComponentName>.zip
    <out>/recipes/recipe.yaml

* Zip: archive root = project root; the includes plus their parent folders, without __pycache__,
  *.pyc and dot-files; deterministic (sorted entries, fixed timestamps and modes), so the same
  sources always give the same bytes.
* Recipe: ComponentName, ComponentVersion (--version, else gdk-config.json "version", as gdk) and
  ComponentPublisher ("author") from gdk-config.json; the s3:// URI naming the zip becomes
  s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/<zip>, as gdk's zip build writes it, or with
  --bucket B s3://B/<name>/<version>/<zip>, as `gdk component publish --bucket B` would. The text is
  edited, so comments survive (gdk's YAML dump drops them; the parsed content is the same).
* Checks: every {artifacts:decompressedPath}/<ComponentName>/<path> the recipe uses is in the zip
  (a forgotten include fails here, not on a device), and the recipe stays within publish's 16,000
  bytes.

Under gdk, leave --version out: publish looks for the zip in the folder named after the configured
version. --version and --bucket are for building and publishing without gdk. Exit status: 0 built,
2 usage error (a missing include, a bad version), 1 build error. Standard library only, so it runs
with the python3 (3.9 or later) of any host where gdk runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import zipfile
from pathlib import Path, PurePosixPath

GDK_CONFIG = "gdk-config.json"
GG_BUILD_DIR = "greengrass-build"
MAX_RECIPE_BYTES = 16000  # gdk's consts.MAX_RECIPE_FILE_SIZE_BYTES
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# A semantic version, as in gdk's config schema (which does not anchor the end).
_PRERELEASE_ID = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
GDK_URI_PREFIX = "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION"


class BuildError(Exception):
    """The project cannot be built as it is (exit status 1)."""


class UsageError(BuildError):
    """The command line asks for something impossible (exit status 2, like argparse)."""


def load_gdk_config(root: Path) -> dict:
    """Name, author and version of the one component, read where gdk reads them."""
    path = root / GDK_CONFIG
    if not path.is_file():
        raise BuildError(f"{path} not found")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BuildError(f"{path}: not JSON ({exc})") from None
    components = config.get("component") or {}
    if len(components) != 1:
        raise BuildError(f"{GDK_CONFIG}: expected exactly one component, found {len(components)}")
    (name, component), = components.items()
    return {"name": name, "author": component.get("author", ""),
            "version": component.get("version", "NEXT_PATCH")}


def find_recipe(root: Path) -> Path:
    """gdk takes exactly one of recipe.json / recipe.yaml from the project root."""
    found = [p for p in (root / "recipe.json", root / "recipe.yaml") if p.is_file()]
    if len(found) != 1:
        raise BuildError("expected exactly one of recipe.json or recipe.yaml in the project root")
    return found[0]


def check_version(version: str, bucket: str | None) -> None:
    """gdk accepts NEXT_PATCH or a semantic version; only publish can resolve NEXT_PATCH."""
    if version != "NEXT_PATCH" and not SEMVER.match(version):
        raise UsageError(f"version {version!r} is neither NEXT_PATCH nor a semantic version")
    if bucket and version == "NEXT_PATCH":
        raise UsageError("--bucket needs a concrete --version "
                         "(gdk publish resolves NEXT_PATCH against the account)")


def skipped(name: str) -> bool:
    """Never shipped: bytecode caches and dot-files (editor swaps, .git, .venv, ...)."""
    return name == "__pycache__" or name.endswith(".pyc") or name.startswith(".")


def resolve_include(root: Path, include: str) -> PurePosixPath:
    """The include as a path relative to the root; anything else is a usage error."""
    spelled = PurePosixPath(include.replace(os.sep, "/"))
    if spelled.is_absolute() or ".." in spelled.parts or not spelled.parts:
        raise UsageError(f"include {include!r} must be a path inside the project root, "
                         "written relative to it")
    if any(skipped(part) for part in spelled.parts):
        raise UsageError(f"include {include!r} names a path that is never shipped "
                         "(__pycache__, *.pyc, dot-file)")
    full = root.joinpath(*spelled.parts)
    if not full.exists():
        raise UsageError(f"include {include!r} does not exist in {root}")
    return spelled


def check_out_folder(out: Path, root: Path, includes: list[PurePosixPath]) -> None:
    """The output folder must not be zipped into itself, nor replaced while being zipped."""
    for include in includes:
        path = root.joinpath(*include.parts).resolve()
        if out.is_relative_to(path) or path.is_relative_to(out):
            raise UsageError(f"output folder {out} overlaps include {str(include)!r}")


def collect(root: Path, includes: list[PurePosixPath]) -> dict[str, Path | None]:
    """Archive name -> source file (None for a folder): the includes, their files and parents."""
    entries: dict[str, Path | None] = {}

    def add(path: Path, arcname: str) -> None:
        if path.is_dir():  # follows symlinks, as a copy would
            entries[arcname + "/"] = None
            for name in sorted(os.listdir(path)):
                if not skipped(name):
                    add(path / name, f"{arcname}/{name}")
        elif path.is_file():
            entries[arcname] = path
        else:
            raise BuildError(f"{path} is neither a file nor a folder (dangling symlink?)")

    for include in includes:
        for parent in reversed(list(include.parents)[:-1]):  # "component/", then deeper
            entries[f"{parent}/"] = None
        before = sum(1 for source in entries.values() if source)
        add(root.joinpath(*include.parts), str(include))
        if sum(1 for source in entries.values() if source) == before:
            raise UsageError(f"include {str(include)!r} adds no file to the artifact")
    return entries


def write_zip(path: Path, entries: dict[str, Path | None]) -> None:
    """Sorted entries, fixed dates and modes: the bytes depend on the sources alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname in sorted(entries):
            source = entries[arcname]
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix, so the mode bits below are honoured when unpacked
            if source is None:
                info.external_attr = ((stat.S_IFDIR | 0o755) << 16) | 0x10
                zf.writestr(info, b"")
            else:
                executable = source.stat().st_mode & stat.S_IXUSR
                info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, source.read_bytes())
    os.replace(tmp, path)


def _set_top_level(text: str, key: str, value: str) -> str:
    """Replace (or add after RecipeFormatVersion) one top-level recipe key, keeping comments."""
    pattern = re.compile(rf"^{key}[ \t]*:.*$", re.MULTILINE | re.IGNORECASE)
    line = f"{key}: {json.dumps(value)}"
    if pattern.search(text):
        return pattern.sub(lambda _m: line, text, count=1)
    return re.sub(r"^(RecipeFormatVersion[ \t]*:.*)$", lambda m: f"{m.group(1)}\n{line}", text,
                  count=1, flags=re.MULTILINE | re.IGNORECASE)


def rewrite_recipe(text: str, *, name: str, version: str, author: str, zip_file: str,
                   bucket: str | None) -> str:
    """The recipe gdk's zip build would write (publish sets the version and bucket later)."""
    text = _set_top_level(text, "ComponentName", name)
    text = _set_top_level(text, "ComponentVersion", version)
    text = _set_top_level(text, "ComponentPublisher", author)
    prefix = f"s3://{bucket}/{name}/{version}" if bucket else GDK_URI_PREFIX
    uri_line = re.compile(
        r"^(?P<lead>[ \t]*(?:-[ \t]+)?uri[ \t]*:[ \t]*)"
        r"(?P<q>[\"']?)(?P<uri>s3://[^\"'\s]+)(?P=q)[ \t]*$",
        re.MULTILINE | re.IGNORECASE)
    found = []

    def repl(match: re.Match) -> str:
        file_name = match.group("uri").rstrip("/").rsplit("/", 1)[-1]
        if file_name != zip_file:
            raise BuildError(f"recipe artifact {match.group('uri')} is not the built {zip_file}")
        found.append(file_name)
        return f"{match.group('lead')}{prefix}/{file_name}"

    text = uri_line.sub(repl, text)
    if not found:
        raise BuildError(f"the recipe has no s3:// artifact URI naming {zip_file}")
    return text


def check_recipe_paths(text: str, zip_stem: str, names: set[str]) -> None:
    """Each unpacked path the recipe uses (requirements files, PYTHONPATH) must be in the zip."""
    used = re.findall(r"\{artifacts:decompressedPath\}/" + re.escape(zip_stem) + r"/(\w[^\"'\s:]*)",
                      text)
    for rel in sorted(set(used)):
        rel = rel.rstrip("/")
        if rel not in names and f"{rel}/" not in names:
            raise BuildError(f"the recipe uses {rel} from the unpacked artifact, but no --include "
                             "puts it there")


def prepare_out(out: Path) -> None:
    """Start from an empty output folder, but never delete one that is not a build output."""
    if out.exists():
        extra = sorted(p.name for p in out.iterdir() if p.name not in ("artifacts", "recipes"))
        if extra:
            raise BuildError(f"{out} holds {extra}: refusing to replace a folder that is not "
                             "a build output")
        shutil.rmtree(out)
    out.mkdir(parents=True)


def build(root: Path, out: Path, includes: list[str], version: str | None,
          bucket: str | None) -> dict:
    """Check everything, then write the zip and the recipe; returns what was built."""
    root = root.resolve()
    cfg = load_gdk_config(root)
    recipe = find_recipe(root)
    version = version or cfg["version"]
    check_version(version, bucket)
    paths = [resolve_include(root, include) for include in includes]
    out = (out if out.is_absolute() else root / out).resolve()
    check_out_folder(out, root, paths)
    entries = collect(root, paths)
    zip_file = f"{cfg['name']}.zip"
    recipe_text = rewrite_recipe(recipe.read_text(encoding="utf-8"), name=cfg["name"],
                                 version=version, author=cfg["author"], zip_file=zip_file,
                                 bucket=bucket)
    check_recipe_paths(recipe_text, cfg["name"], set(entries))
    if len(recipe_text.encode("utf-8")) > MAX_RECIPE_BYTES:
        raise BuildError(f"the built recipe is over {MAX_RECIPE_BYTES} bytes (gdk publish refuses it)")

    prepare_out(out)
    artifact = out / "artifacts" / cfg["name"] / version / zip_file
    write_zip(artifact, entries)
    recipe_out = out / "recipes" / recipe.name
    recipe_out.parent.mkdir(parents=True, exist_ok=True)
    recipe_out.write_text(recipe_text, encoding="utf-8")
    files = [source for source in entries.values() if source is not None]
    return {"artifact": artifact, "recipe": recipe_out, "files": len(files),
            "unzipped_bytes": sum(source.stat().st_size for source in files),
            "zip_bytes": artifact.stat().st_size,
            "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--include", action="append", required=True, metavar="PATH",
                        help="file or folder (recursive) to ship, relative to the project root; "
                             "repeat for each")
    parser.add_argument("--version",
                        help="component version (default: gdk-config.json 'version', as gdk build)")
    parser.add_argument("--bucket",
                        help="resolve the artifact URI to s3://BUCKET/<name>/<version>/ "
                             "(as gdk publish --bucket)")
    parser.add_argument("--out", default=GG_BUILD_DIR,
                        help="output folder, relative to the project root (default: %(default)s)")
    parser.add_argument("--project-root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="project root holding gdk-config.json and recipe.yaml "
                             "(default: parent of component/)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = build(args.project_root, Path(args.out), args.include, args.version, args.bucket)
    except UsageError as exc:
        print(f"build_artifact: error: {exc}", file=sys.stderr)
        return 2
    except (BuildError, OSError) as exc:
        print(f"build_artifact: error: {exc}", file=sys.stderr)
        return 1
    print(f"artifact {result['artifact']} ({result['files']} files, {result['unzipped_bytes']} "
          f"bytes unzipped, {result['zip_bytes']} bytes zipped, sha256 {result['sha256']})")
    print(f"recipe   {result['recipe']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
