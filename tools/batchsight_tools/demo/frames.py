"""What the camera drops and what the detector is fitted on: generated parts, or a folder of photographs.

Why a module of its own: a folder given with --images is checked whole before anything starts
(its layout, at least 3 normal images, every image readable and within what the gateway takes),
so a wrong folder is one line and exit 2, never a traceback half-way through a run; and the
model is fitted exactly as `batchsight fit` fits it, so the demo shows the detector a user gets.
"""
from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from pathlib import Path

from batchsight_detector import fit
from batchsight_detector.features import image_size
from batchsight_tools.synth import generate, generate_training_set

SUFFIXES = (".jpg", ".jpeg", ".png")
LAYOUT = "train/normal and test/{normal,anomaly}"
MIN_NORMAL = 3                  # fit() refuses fewer
MAX_BYTES = 6 * 1024 * 1024     # the gateway's ingest.max_bytes, min_side and max_side defaults
SIDES = (64, 4096)
EXAMPLE = "../shared/data/casting"


class UsageProblem(Exception):
    """A wrong argument found after parsing; the message is the one line the user sees (exit 2)."""


@dataclass
class Frame:
    path: Path            # the source file
    label: str            # "normal" or "anomaly"
    name: str = ""        # its name in the drop folder (the source's, made unique)
    dropped_at: float = 0.0
    stream: int = 1       # the model loop's second stream is 2
    note: str = ""        # what is special about it, e.g. "lens dust" (streams.py)

    def __post_init__(self) -> None:
        self.name = self.name or self.path.name


@dataclass(frozen=True)
class ImageFolder:
    """A checked --images folder."""

    root: Path
    normal: list[Path]        # train/normal: fitted on
    anomalous: list[Path]     # train/anomaly (may be empty): sets the threshold
    test: list[Frame]         # test/normal and test/anomaly: dropped
    duplicates: int           # test images with the bytes of an earlier one (the gateway takes them once)


@dataclass(frozen=True)
class Fitted:
    path: Path
    method: str
    description: str          # for the summary: method, images, threshold, time


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def _check_image(path: Path, data: bytes, *, dropped: bool) -> None:
    """Readable, and (for the images the camera drops) within what the gateway accepts."""
    advice = "remove it or replace it with a readable JPEG or PNG"
    try:
        width, height = image_size(data)
    except ValueError as exc:
        raise UsageProblem(f"--images: {path}: {exc}; {advice}") from exc
    if dropped and len(data) > MAX_BYTES:
        raise UsageProblem(f"--images: {path} is {len(data) / 2**20:.1f} MiB; the gateway takes images up to "
                           f"{MAX_BYTES // 2**20} MiB (ingest.max_bytes): remove it or make it smaller")
    if dropped and not (SIDES[0] <= min(width, height) and max(width, height) <= SIDES[1]):
        raise UsageProblem(f"--images: {path} is {width}x{height} px; the gateway takes sides of {SIDES[0]} to "
                           f"{SIDES[1]} px (ingest.min_side, max_side): remove it or resize it")


def read_folder(root: Path) -> ImageFolder:
    """Check the layout and every image of ``root``; a problem raises UsageProblem."""
    if not root.is_dir():
        problem = "is a file, not a folder" if root.exists() else "does not exist"
        raise UsageProblem(f"--images {root} {problem}; give a folder with {LAYOUT}, e.g. {EXAMPLE}")
    for sub in ("train/normal", "test/normal", "test/anomaly"):
        if not (root / sub).is_dir():
            raise UsageProblem(f"--images {root} has no {sub} folder; it must hold {LAYOUT} (like {EXAMPLE})")
    normal = _images(root / "train" / "normal")
    if len(normal) < MIN_NORMAL:
        raise UsageProblem(f"--images {root / 'train' / 'normal'} holds {len(normal)} images "
                           f"({', '.join(SUFFIXES)}); fitting needs at least {MIN_NORMAL}")
    anomalous = _images(root / "train" / "anomaly") if (root / "train" / "anomaly").is_dir() else []
    for path in normal + anomalous:
        _check_image(path, path.read_bytes(), dropped=False)
    test: list[Frame] = []
    seen: set[str] = set()
    names: set[str] = set()
    duplicates = 0
    for label in ("normal", "anomaly"):
        for path in _images(root / "test" / label):
            data = path.read_bytes()
            _check_image(path, data, dropped=True)
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                duplicates += 1
                continue
            seen.add(digest)
            test.append(Frame(path, label, name=_unique(path.name, names)))
    if not test:
        raise UsageProblem(f"--images {root}: test/normal and test/anomaly hold no images ({', '.join(SUFFIXES)}); "
                           "put the images the camera should drop there")
    return ImageFolder(root, normal, anomalous, test, duplicates)


def _unique(name: str, taken: set[str]) -> str:
    """The drop folder is flat: test/normal/1.jpg and test/anomaly/1.jpg cannot share a name."""
    stem, dot, suffix = name.rpartition(".")
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    taken.add(candidate)
    return candidate


def camera_frames(folder: ImageFolder | None, *, count: int, size: int, seed: int, anomaly_rate: float,
                  out: Path) -> list[Frame]:
    """The frames to drop: ``count`` test images in a shuffled order, or ``count`` generated parts."""
    if folder is not None:
        frames = list(folder.test)
        random.Random(seed).shuffle(frames)
        return frames[:count]
    return [Frame(img.path, img.label) for img in
            generate(out, count=count, size=size, seed=seed, anomaly_rate=anomaly_rate)]


def method_for(method: str, folder: ImageFolder | None) -> str:
    """auto: what `batchsight fit` picks (patchcore) for photographs; aligned for the generated parts,
    where it finds every defect and fits in a second (patchcore: about 50 s, a false alarm in 60)."""
    if method != "auto":
        return method
    return "patchcore" if folder is not None else "aligned"


def fit_model(folder: ImageFolder | None, *, method: str, train: int, size: int, seed: int,
              model_path: Path) -> Fitted:
    """Fit as `batchsight fit --normal train/normal [--anomalous train/anomaly] --method M` does
    (its working size and augmentation defaults), or on generated normal parts."""
    if folder is not None:
        normal = [p.read_bytes() for p in folder.normal]
        anomalous = [p.read_bytes() for p in folder.anomalous]
        source = f"{len(normal)} normal images"
    else:
        normal, anomalous = generate_training_set(train, size=size, seed=seed), []
        source = f"{len(normal)} generated normal parts"
    started = time.perf_counter()
    try:
        model = fit(normal, anomalous_images=anomalous or None, method=method)
    except ValueError as exc:   # an image whose header read but whose body does not
        raise UsageProblem(f"--images {folder.root if folder else ''}: {exc}; remove the image or replace "
                           "it with a readable JPEG or PNG") from exc
    seconds = time.perf_counter() - started
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model.save(model_path)
    threshold = (f"threshold from the {len(anomalous)} defective images of train/anomaly" if anomalous
                 else "threshold from held-out normal images")
    augmentation = getattr(model, "augmentation", ())
    extra = f", augmented with {'/'.join(augmentation)}" if augmentation else ""
    return Fitted(model_path, method, f"{method} on {source}{extra}, {threshold}, fitted in {seconds:.1f} s")
