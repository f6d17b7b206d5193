"""`batchsight model fit`, `evaluate`, `publish` and `list`: a version made, measured, published, shown.

Each handler takes the parsed arguments and the clients (made on first use), prints what a
person needs to know next on stdout and raises UsageError or Failure for the one-line error.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from batchsight_detector import DetectorModel
from batchsight_detector import arguments as detector_arguments
from batchsight_tools.dataset.loading import Image, describe, load
from batchsight_tools.dataset.split import HOLDOUT_PERCENT
from batchsight_tools.models import fitting
from batchsight_tools.models.arguments import Clients, Failure, UsageError
from batchsight_tools.models.evaluation import evaluate_images, metrics
from batchsight_tools.models.gate import Comparison
from batchsight_tools.models.package import Candidate
from batchsight_tools.models.publish import publish as publish_version
from batchsight_tools.models.registry import Registry


def fit(args: argparse.Namespace, clients: Clients) -> int:
    settings = fitting.settings_from(args)
    output = detector_arguments.output_file("--output", args.output)
    dataset = load(args.dataset, lambda: clients.s3)
    started = time.perf_counter()
    model, training = fitting.fit_on(dataset, settings)
    try:
        model.save(output)
    except OSError as exc:
        raise UsageError(f"--output {output}: cannot write it ({exc.strerror or exc}); give a file in a folder "
                         "you can write to") from exc
    print(f"fitted {model.method} on the training split of {dataset.location} ({describe(training)}; the anomaly "
          f"images set the threshold) in {time.perf_counter() - started:.1f} s; threshold {model.threshold:.4f}; "
          f"wrote {output}")
    print(f"  {len(dataset.images) - len(training)} images held out ({HOLDOUT_PERCENT} % by image id) for "
          f"`batchsight model evaluate --model {output} --dataset {args.dataset}`")
    return 0


def evaluate(args: argparse.Namespace, clients: Clients) -> int:
    model = _model_file(args.model)
    dataset = load(args.dataset, lambda: clients.s3)
    held_out = dataset.evaluation()
    result = evaluate_images(model, held_out)
    print(f"{args.model} on the held-out {HOLDOUT_PERCENT} % of {dataset.location} ({describe(held_out)}):")
    print("\n".join("  " + line for line in result.lines()))
    return 0


def publish(args: argparse.Namespace, clients: Clients) -> int:
    """Evaluate, gate against the current version on the same images, then publish atomically."""
    model = _model_file(args.model)
    dataset = load(args.dataset, lambda: clients.s3)
    held_out = dataset.evaluation()
    candidate_metrics = metrics(evaluate_images(model, held_out))
    registry = Registry(clients.s3, args.bucket, args.name)
    index, _ = registry.read_index()
    current = (index or {}).get("current")
    if current:
        _gate(registry, current, candidate_metrics, held_out, margin=args.margin, force=args.force)
    published = publish_version(registry, Candidate(
        model_file=Path(args.model).read_bytes(), method=model.method, threshold=model.threshold,
        metrics=candidate_metrics, dataset_manifest=dataset.location, dataset_sha256=dataset.sha256))
    print(f"published {args.name} version {published.version}: AUROC {candidate_metrics['auroc']:.3f}, F1 "
          f"{candidate_metrics['f1']:.3f} on {describe(held_out)} held-out images; "
          f"{registry.uri(published.package_key)}")
    now = f"current stays version {current}" if current else "no version is current yet"
    print(f"  {now}; make it current with `batchsight model deploy --bucket {args.bucket} --name {args.name} "
          f"--version {published.version}`")
    return 0


def _gate(registry: Registry, current: str, candidate: dict[str, Any], held_out: list[Image], *, margin: float,
          force: bool) -> None:
    """Refuse (Failure) a candidate worse than the current version on the same images, unless forced."""
    try:
        baseline = metrics(evaluate_images(registry.load_model(current), held_out))
    except Failure as exc:
        if not force:
            raise Failure(f"cannot gate against current version {current}: {exc}; give --force to publish "
                          "without the gate") from exc
        print(f"gate skipped with --force: current version {current} cannot be evaluated: {exc}")
        return
    comparison = Comparison(current, candidate, baseline, margin)
    if comparison.refusal() and not force:
        raise Failure(comparison.refusal())
    print(("gate overridden with --force: " if comparison.refusal() else "gate passed: ") + comparison.summary())


def list_versions(args: argparse.Namespace, clients: Clients) -> int:
    registry = Registry(clients.s3, args.bucket, args.name)
    index = registry.index()
    print(f"model {args.name}: {registry.uri(registry.index_key)}")
    print(f"  {'version':>7}  {'created':20}  {'AUROC':>6}  {'F1':>6}")
    marks = {index.get("current"): "current", index.get("candidate"): "candidate"}
    for version in sorted(index["versions"], key=int):
        entry = index["versions"][version]
        print(f"  {version:>7}  {entry['created_at']:20}  {entry['auroc']:6.3f}  {entry['f1']:6.3f}  "
              f"{marks.get(version, '')}".rstrip())
    if not index["versions"]:
        print("  no versions yet")
    print(f"  history of current versions: {' -> '.join(index['history']) or 'none (nothing deployed yet)'}")
    return 0


def _model_file(path: str) -> DetectorModel:
    try:
        return DetectorModel.load(detector_arguments.model_file("--model", path))
    except ValueError as exc:   # model_file's message names the file and says what a model is
        raise UsageError(str(exc)) from exc
