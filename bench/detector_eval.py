"""Evaluate the local anomaly detector on labelled image sets, against plain baselines.

For each set, fits on <data>/<set>/train/normal (optionally also train/anomaly, to set
the threshold), scores <data>/<set>/test/{normal,anomaly}, and prints in one run:
  - image-level AUROC (`AUROC 0.973` on its own line), precision/recall/F1 and a
    confusion matrix at the model's threshold;
  - per-image latency of detect() from bytes in memory, decode included (the sets differ
    in size: circuitboard 2000x1334, casting 512x512);
  - baselines: mean absolute difference from the mean training image per pixel (no
    alignment or normalisation), PCA reconstruction error, and for --method patchcore the
    aligned method too; and the AUROC ratio to the per-pixel baseline;
  - a summary table (markdown) of all sets at the end.

    python bench/detector_eval.py                              # patchcore (default), both sets
    python bench/detector_eval.py --method aligned             # the numpy-only method
    python bench/detector_eval.py --augment none               # patchcore without flips/rotations
    python bench/detector_eval.py --set casting --extra-normal 'stream/images/cast_ok_*'
    python bench/detector_eval.py --data /path/to/data --supervised --working-size 192
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from batchsight_detector import arguments, fit
from batchsight_tools.bench.heading import heading
from batchsight_detector.features import Preprocessing, pixels
from batchsight_detector.patchcore import PatchMemory

REPO = Path(__file__).resolve().parents[1]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--set", default="circuitboard,casting",
                        help="comma-separated folders under --data (circuitboard, casting)")
    parser.add_argument("--method", choices=["aligned", "patchcore"], default="patchcore")
    parser.add_argument("--working-size", type=arguments.working_size, default=None,
                        help="aligned: side (default 128); patchcore: network input's long "
                             "side (default from the image size)")
    parser.add_argument("--color", choices=["gray", "rgb"], default="gray")
    parser.add_argument("--bank", type=int, default=64, help="max_bank_images for fit()")
    parser.add_argument("--extra-normal", metavar="GLOB",
                        help="more normal images to fit on, relative to the set, "
                             "e.g. 'stream/images/cast_ok_*'")
    parser.add_argument("--supervised", action="store_true",
                        help="also pass train/anomaly to fit() so it sets an F1-optimal threshold")
    parser.add_argument("--augment", type=arguments.augment, default="auto",
                        help="patchcore: auto, none, or transform names (flip_h,flip_v,rot180,...) (default auto)")
    args = parser.parse_args()
    rows = [evaluate(args, name.strip()) for name in args.set.split(",")]
    print(f"\n== summary, method {args.method}"
          f"{', threshold from train/anomaly' if args.supervised else ''} ==")
    print(heading() + "\n")
    print("| set | image | AUROC | P / R / F1 | latency p50 / p95 | per-pixel | PCA"
          + (" | aligned |" if args.method != "aligned" else " |"))
    print("|---|---|---|---|---|---|---" + ("|---|" if args.method != "aligned" else "|"))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def evaluate(args: argparse.Namespace, name: str) -> list[str]:
    root = args.data / name
    train_normal = read_images(root / "train" / "normal")
    if args.extra_normal:
        train_normal += [p.read_bytes() for p in sorted(root.glob(args.extra_normal))]
    train_anomaly = read_images(root / "train" / "anomaly") if args.supervised else []
    test_normal = read_images(root / "test" / "normal")
    test_anomaly = read_images(root / "test" / "anomaly")
    labels = np.array([0] * len(test_normal) + [1] * len(test_anomaly))
    test = test_normal + test_anomaly
    size = image_size(test[0])
    print(f"\n== set {name}, method {args.method} ==")
    print(f"set {name}: train {len(train_normal)} normal"
          f"{f' + {len(train_anomaly)} anomalous' if train_anomaly else ''}, "
          f"test {len(test_normal)} normal + {len(test_anomaly)} anomalous, {size}")

    started = time.perf_counter()
    model = fit(train_normal, anomalous_images=train_anomaly or None, method=args.method,
                working_size=args.working_size, color=args.color, max_bank_images=args.bank,
                augment=args.augment)
    if isinstance(model.bank, PatchMemory):  # --method patchcore
        kept = (f"{len(model.bank.patches)} patches kept, input {model.bank.size[0]}x"
                f"{model.bank.size[1]}, augmentation {','.join(model.augmentation) or 'none'} "
                f"(check: {model.augmentation_check or 'skipped'})")
    else:
        kept = f"{len(model.bank.images)} images kept"
    print(f"fit {time.perf_counter() - started:.2f} s, {kept}")
    held = model.held_out_scores
    rule = "max F1 vs train/anomaly" if train_anomaly else "unsupervised"
    print(f"threshold {model.threshold:.3f} ({rule}); "
          f"held-out normal scores median {np.median(held):.2f}, max {held.max():.2f}; "
          f"score spread {model.score_spread:.3f}")

    model.detect(test[0])                      # warm-up: session start, first allocations
    verdicts, scores, latencies = [], [], []
    for data in test:
        started = time.perf_counter()
        verdicts.append(model.detect(data)["IsAnomalous"])
        latencies.append(time.perf_counter() - started)
        scores.append(model.score(data))
    detector_auroc = auroc(np.array(scores), labels)
    print(f"AUROC {detector_auroc:.3f}")
    precision, recall, f1 = report_threshold(np.array(verdicts), labels)
    ms = np.array(latencies) * 1000
    print(f"latency per image (decode + detect, {size}): median "
          f"{np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    prep = Preprocessing(128 if args.method == "patchcore" else args.working_size or 128,
                         args.color)
    baseline_auroc = auroc(baseline_scores(train_normal, test, prep), labels)
    print(f"baseline (per-pixel mean abs diff) AUROC {baseline_auroc:.3f}")
    pca_auroc = auroc(pca_scores(train_normal, test, Preprocessing(64, "gray")), labels)
    print(f"baseline (PCA reconstruction error) AUROC {pca_auroc:.3f}")
    row = [name, size, f"{detector_auroc:.3f}", f"{precision:.2f} / {recall:.2f} / {f1:.2f}",
           f"{np.median(ms):.0f} / {np.percentile(ms, 95):.0f} ms", f"{baseline_auroc:.3f}",
           f"{pca_auroc:.3f}"]
    if args.method != "aligned":
        aligned = fit(train_normal, anomalous_images=train_anomaly or None,
                      max_bank_images=args.bank)
        aligned_auroc = auroc(np.array([aligned.score(d) for d in test]), labels)
        print(f"baseline (aligned method, default) AUROC {aligned_auroc:.3f}")
        row.append(f"{aligned_auroc:.3f}")
    print(f"AUROC ratio detector/baseline {detector_auroc / baseline_auroc:.2f}")
    return row


def image_size(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as img:
        return f"{img.size[0]}x{img.size[1]}"


def read_images(folder: Path) -> list[bytes]:
    if not folder.is_dir():
        sys.exit(f"missing folder {folder} (see --data)")
    return [p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(scores.size)
    ranks[order] = np.arange(1, scores.size + 1)
    for value in np.unique(scores):            # average ranks over ties
        tied = scores == value
        ranks[tied] = ranks[tied].mean()
    positives, negatives = int(labels.sum()), int((labels == 0).sum())
    u = ranks[labels == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))


def report_threshold(predicted: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    tp = int(np.sum(predicted & (labels == 1)))
    fp = int(np.sum(predicted & (labels == 0)))
    fn = int(np.sum(~predicted & (labels == 1)))
    tn = int(np.sum(~predicted & (labels == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(f"at threshold: precision {precision:.3f} recall {recall:.3f} F1 {f1:.3f}")
    print("confusion matrix      predicted normal  predicted anomaly")
    print(f"  actual normal       {tn:16d}  {fp:17d}")
    print(f"  actual anomaly      {fn:16d}  {tp:17d}")
    return precision, recall, f1


def pca_scores(train: list[bytes], test: list[bytes], prep: Preprocessing) -> np.ndarray:
    """Distance from the span of the training images' main components (raw intensities)."""
    x = np.stack([pixels(d, prep).ravel() for d in train])
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    basis = vt[: max(1, min(10, len(train) - 1))]
    y = np.stack([pixels(d, prep).ravel() for d in test]) - mean
    return np.linalg.norm(y - (y @ basis.T) @ basis, axis=1)


def baseline_scores(train: list[bytes], test: list[bytes], prep: Preprocessing) -> np.ndarray:
    """Mean |pixel - mean training pixel| on raw intensities: what the detector must beat."""
    mean = np.mean([pixels(data, prep) for data in train], axis=0)
    return np.array([np.abs(pixels(data, prep) - mean).mean() for data in test])


if __name__ == "__main__":
    main()
