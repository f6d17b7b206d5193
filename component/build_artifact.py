#!/usr/bin/env python3
"""Build the Greengrass artifact and recipe of the batchsight edge component without gdk.

    python component/build_artifact.py [--version 0.1.0] [--bucket B] [--out greengrass-build]

Produces what `gdk component build` (zip build system, gdk 1.5+ glob excludes) makes from
gdk-config.json and recipe.yaml:

    <out>/artifacts/<ComponentName>/<version>/<zip name>.zip
    <out>/recipes/recipe.yaml

* Archive root = project root. gdk always leaves out gdk-config.json, greengrass-build and the
  recipe file; with an `options` block it leaves out exactly the `excludes` globs (relative to the
  project root, `**` recursive), without one its defaults `**/test*`, `**/.*`, `**/node_modules`.
* Zip name: `zip_name` absent -> the project folder's name, "" -> the component name, else zip_name.
* Recipe: ComponentName, ComponentVersion and ComponentPublisher come from gdk-config.json
  (component key, --version or "version", "author"); every s3:// artifact URI whose file is the
  built zip becomes s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/<file>, as gdk build writes
  it. With --bucket B the URI is resolved as `gdk component publish --bucket B` resolves it:
  s3://B/<name>/<version>/<file>. (gdk rewrites the recipe through a YAML dump and drops comments;
  this script edits the text and keeps them; the parsed content is the same.)

Differences from gdk, on purpose: the zip is deterministic (sorted entries, fixed timestamps and
modes), no zip-build/ folder is left in the project, and an existing output folder that holds
anything but artifacts/ and recipes/ is refused rather than deleted. Standard library only.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import zipfile
from pathlib import Path

GDK_CONFIG = "gdk-config.json"
GG_BUILD_DIR = "greengrass-build"
DEFAULT_EXCLUDES = ["**/test*", "**/.*", "**/node_modules"]  # gdk's defaults when no build options
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
    pass


def load_gdk_config(root: Path) -> dict:
    path = root / GDK_CONFIG
    if not path.is_file():
        raise BuildError(f"{path} not found")
    config = json.loads(path.read_text(encoding="utf-8"))
    components = config.get("component") or {}
    if len(components) != 1:
        raise BuildError(f"{GDK_CONFIG}: expected exactly one component, found {len(components)}")
    (name, component), = components.items()
    build = component.get("build") or {}
    if build.get("build_system") != "zip":
        raise BuildError(f"{GDK_CONFIG}: this script only mirrors build_system 'zip'")
    return {
        "name": name,
        "author": component.get("author", ""),
        "version": component.get("version", "NEXT_PATCH"),
        "options": build.get("options") or {},
    }


def find_recipe(root: Path) -> Path:
    # gdk looks for exactly one of recipe.json / recipe.yaml in the project root.
    found = [p for p in (root / "recipe.json", root / "recipe.yaml") if p.is_file()]
    if len(found) != 1:
        raise BuildError("expected exactly one of recipe.json or recipe.yaml in the project root")
    return found[0]


def ignore_patterns(options: dict, recipe_name: str) -> list[str]:
    patterns = [GDK_CONFIG, GG_BUILD_DIR, recipe_name]
    patterns += list(options.get("excludes", [])) if options else DEFAULT_EXCLUDES
    return patterns


def unwanted_paths(root: Path, patterns: list[str]) -> set[str]:
    # As gdk's Zip.generate_ignore_list_from_globs: glob each pattern under the root, recursively.
    out: set[str] = set()
    for pattern in patterns:
        out |= set(glob.glob(f"{root}{os.sep}{pattern}", recursive=True))
    return out


def collect(root: Path, unwanted: set[str], skip: set[Path]) -> list[tuple[str, Path | None]]:
    """(archive name, source file or None for a directory) for everything gdk would copy."""
    entries: list[tuple[str, Path | None]] = []

    def walk(directory: Path, prefix: str) -> None:
        for name in sorted(os.listdir(directory)):
            full = directory / name
            if str(full) in unwanted or f"{full}{os.sep}" in unwanted or full in skip:
                continue
            arcname = f"{prefix}{name}"
            if full.is_dir():  # follows symlinks, like shutil.copytree(symlinks=False)
                entries.append((arcname + "/", None))
                walk(full, arcname + "/")
            elif full.is_file():
                entries.append((arcname, full))
            elif full.is_symlink():
                raise BuildError(f"dangling symlink: {full}")

    walk(root, "")
    return entries


def write_zip(path: Path, entries: list[tuple[str, Path | None]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for arcname, source in sorted(entries, key=lambda e: e[0]):
            info = zipfile.ZipInfo(arcname, date_time=ZIP_EPOCH)
            info.create_system = 3  # unix, so the mode bits below are honoured
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
    pattern = re.compile(rf"^{key}[ \t]*:.*$", re.MULTILINE | re.IGNORECASE)
    line = f"{key}: {json.dumps(value)}"
    if pattern.search(text):
        return pattern.sub(lambda _m: line, text, count=1)
    return re.sub(r"^(RecipeFormatVersion[ \t]*:.*)$", lambda m: f"{m.group(1)}\n{line}", text,
                  count=1, flags=re.MULTILINE | re.IGNORECASE)


def rewrite_recipe(text: str, *, name: str, version: str, author: str, zip_file: str,
                   bucket: str | None) -> str:
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
            raise BuildError(f"recipe artifact {match.group('uri')} is not the built {zip_file} "
                             "(gdk would look for it on S3; this script cannot)")
        found.append(file_name)
        return f"{match.group('lead')}{prefix}/{file_name}"

    text = uri_line.sub(repl, text)
    if not found:
        raise BuildError(f"the recipe has no s3:// artifact URI naming {zip_file}")
    return text


def prepare_out(out: Path) -> None:
    if out.exists():
        extra = sorted(p.name for p in out.iterdir() if p.name not in ("artifacts", "recipes"))
        if extra:
            raise BuildError(f"{out} holds {extra}: refusing to replace a folder that is not "
                             "a build output")
        shutil.rmtree(out)
    out.mkdir(parents=True)


def build(root: Path, out: Path, version: str | None, bucket: str | None) -> dict:
    root = root.resolve()
    cfg = load_gdk_config(root)
    recipe = find_recipe(root)
    version = version or cfg["version"]
    if version != "NEXT_PATCH" and not SEMVER.match(version):
        raise BuildError(f"version {version!r} is neither NEXT_PATCH nor a semantic version")
    if bucket and version == "NEXT_PATCH":
        raise BuildError("--bucket needs a concrete --version "
                         "(gdk publish resolves NEXT_PATCH against the account)")

    zip_name = cfg["options"].get("zip_name") if cfg["options"] else None
    zip_stem = root.name if zip_name is None else (zip_name or cfg["name"])
    zip_file = f"{zip_stem}.zip"

    out = out if out.is_absolute() else root / out
    out = out.resolve()
    unwanted = unwanted_paths(root, ignore_patterns(cfg["options"], recipe.name))
    entries = collect(root, unwanted, {out})
    prepare_out(out)

    artifact = out / "artifacts" / cfg["name"] / version / zip_file
    write_zip(artifact, entries)
    recipe_out = out / "recipes" / recipe.name
    recipe_out.parent.mkdir(parents=True, exist_ok=True)
    recipe_out.write_text(
        rewrite_recipe(recipe.read_text(encoding="utf-8"), name=cfg["name"], version=version,
                       author=cfg["author"], zip_file=zip_file, bucket=bucket),
        encoding="utf-8")
    return {
        "artifact": artifact,
        "recipe": recipe_out,
        "files": sum(1 for _, src in entries if src is not None),
        "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
        "names": [a for a, _ in entries],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
    args = parser.parse_args(argv)
    try:
        result = build(args.project_root, Path(args.out), args.version, args.bucket)
    except (BuildError, OSError, ValueError) as exc:
        print(f"build_artifact: error: {exc}", file=sys.stderr)
        return 1
    names = set(result["names"])
    for required in ("component/requirements.txt", "component/batchsight/__main__.py"):
        if required not in names:
            print(f"build_artifact: warning: {required} is not in the artifact", file=sys.stderr)
    print(f"artifact {result['artifact']} ({result['files']} files, sha256 {result['sha256']})")
    print(f"recipe   {result['recipe']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
