"""Evaluate the local anomaly detector on a labelled image set, against a plain baseline.

Fits on <data>/<set>/train/normal (optionally also train/anomaly, to set the threshold),
scores <data>/<set>/test/{normal,anomaly}, and prints in one run:
  - image-level AUROC (`AUROC 0.973` on its own line), precision/recall/F1 and a
    confusion matrix at the model's threshold;
  - per-image latency of detect() from bytes in memory, decode included;
  - the baseline: mean absolute difference from the mean training image, per pixel, at
    the same resolution and colour, no alignment or normalisation; and the AUROC ratio.

    python bench/detector_eval.py                       # circuitboard, from ../shared/data
    python bench/detector_eval.py --set casting --extra-normal 'stream/images/cast_ok_*' --bank 128
    python bench/detector_eval.py --data /path/to/data --supervised --working-size 192
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "cloud" / "src"))

from batchsight_cloud.detector import fit
from batchsight_cloud.detector.features import Preprocessing, pixels

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--set", default="circuitboard",
                        help="folder under --data (circuitboard, casting)")
    parser.add_argument("--working-size", type=int, default=128)
    parser.add_argument("--color", choices=["gray", "rgb"], default="gray")
    parser.add_argument("--bank", type=int, default=64, help="max_bank_images for fit()")
    parser.add_argument("--extra-normal", metavar="GLOB",
                        help="more normal images to fit on, relative to the set, "
                             "e.g. 'stream/images/cast_ok_*'")
    parser.add_argument("--supervised", action="store_true",
                        help="also pass train/anomaly to fit() so it sets an F1-optimal threshold")
    args = parser.parse_args()

    root = args.data / args.set
    train_normal = read_images(root / "train" / "normal")
    if args.extra_normal:
        train_normal += [p.read_bytes() for p in sorted(root.glob(args.extra_normal))]
    train_anomaly = read_images(root / "train" / "anomaly") if args.supervised else []
    test_normal = read_images(root / "test" / "normal")
    test_anomaly = read_images(root / "test" / "anomaly")
    labels = np.array([0] * len(test_normal) + [1] * len(test_anomaly))
    test = test_normal + test_anomaly
    print(f"set {args.set}: train {len(train_normal)} normal"
          f"{f' + {len(train_anomaly)} anomalous' if train_anomaly else ''}, "
          f"test {len(test_normal)} normal + {len(test_anomaly)} anomalous; "
          f"working size {args.working_size}, {args.color}")

    started = time.perf_counter()
    model = fit(train_normal, anomalous_images=train_anomaly or None,
                working_size=args.working_size, color=args.color, max_bank_images=args.bank)
    print(f"fit {time.perf_counter() - started:.2f} s, {len(model.bank.images)} images kept, "
          f"threshold {model.threshold:.3f}")

    verdicts, latencies = [], []
    for data in test:
        started = time.perf_counter()
        verdicts.append(model.detect(data)["IsAnomalous"])
        latencies.append(time.perf_counter() - started)
    scores = [model.score(data) for data in test]
    detector_auroc = auroc(np.array(scores), labels)
    print(f"AUROC {detector_auroc:.3f}")
    report_threshold(np.array(verdicts), labels)
    ms = np.array(latencies) * 1000
    print(f"latency per image (decode + detect): median {np.median(ms):.1f} ms, "
          f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms")

    prep = Preprocessing(args.working_size, args.color)
    baseline = baseline_scores(train_normal, test, prep)
    baseline_auroc = auroc(baseline, labels)
    print(f"baseline (per-pixel mean abs diff) AUROC {baseline_auroc:.3f}")
    print(f"AUROC ratio detector/baseline {detector_auroc / baseline_auroc:.2f}")


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


def report_threshold(predicted: np.ndarray, labels: np.ndarray) -> None:
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


def baseline_scores(train: list[bytes], test: list[bytes], prep: Preprocessing) -> np.ndarray:
    """Mean |pixel - mean training pixel| on raw intensities: what the detector must beat."""
    mean = np.mean([pixels(data, prep) for data in train], axis=0)
    return np.array([np.abs(pixels(data, prep) - mean).mean() for data in test])


if __name__ == "__main__":
    main()
