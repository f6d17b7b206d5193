"""The training folder and its fit, for the ``lambda`` backend: what `batchsight model` makes a version from.

Why a module of its own: the version the ``lambda`` backend runs is made the way a quality
engineer makes one (docs/models.md): `batchsight dataset build` of labelled folders,
`batchsight model fit` on the dataset's training split, `model publish` measuring it on the
held-out split (one image in five, chosen by image id) and gating it. So the demo writes a
training folder (``normal/`` and ``anomaly/``) in which both splits hold both classes, and fits
with `batchsight model fit`, printed as the command it is. With ``--images DIR`` the folder is
``DIR/train``, which then needs ``train/anomaly``.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from batchsight_tools.dataset.split import HOLDOUT_PERCENT, held_out
from batchsight_tools.demo.frames import SUFFIXES, Fitted, ImageFolder, UsageProblem
from batchsight_tools.localcloud import model_commands
from batchsight_tools.synth import DEFECTS, encode, generate_training_set, render_part

MIN_HELD_OUT = 2          # of each class: publish measures AUROC and F1 on both
_DEFECT_STREAM = 7919     # the defective training parts' random stream (synth uses 0 and 1)


def _image_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_generated(folder: Path, *, train: int, size: int, seed: int) -> Path:
    """``folder/normal`` with ``train`` generated good parts in the training split (and those held out
    beside them), ``folder/anomaly`` with defective ones; both splits hold both classes."""
    (folder / "normal").mkdir(parents=True, exist_ok=True)
    (folder / "anomaly").mkdir(exist_ok=True)
    count = train + train // 3 + 8
    while True:   # the first images of a seed's stream are the same whatever the count
        normal = generate_training_set(count, size=size, seed=seed)
        fitted = [i for i, data in enumerate(normal) if not held_out(_image_id(data))]
        kept = normal[:fitted[train - 1] + 1] if len(fitted) >= train else []
        if kept and sum(held_out(_image_id(data)) for data in kept) >= MIN_HELD_OUT:
            break
        count *= 2
    for n, data in enumerate(kept):
        (folder / "normal" / f"good_{n:03d}.jpg").write_bytes(data)
    rng = np.random.default_rng([seed, _DEFECT_STREAM])
    wanted = max(4, train // 8)   # defective examples set the threshold (best F1), as `model fit` does
    split = {True: 0, False: 0}
    n = 0
    while split[True] < MIN_HELD_OUT or split[False] < wanted:
        defect = DEFECTS[n % len(DEFECTS)]
        data = encode(render_part(rng, size=size, defect=defect), "jpg")
        (folder / "anomaly" / f"defect_{n:03d}_{defect}.jpg").write_bytes(data)
        split[held_out(_image_id(data))] += 1
        n += 1
    return folder


def check_photographs(folder: ImageFolder) -> Path:
    """``DIR/train`` as the training folder: it needs anomaly images in both splits."""
    train = folder.root / "train"
    if not folder.anomalous:
        raise UsageProblem(f"--images {folder.root} has no train/anomaly: the lambda backend publishes the model with "
                           "`batchsight model publish`, which measures it on held-out normal and anomaly images; add "
                           "pictures of defective parts to train/anomaly, or give --backend local")
    for kind, paths in (("normal", folder.normal), ("anomaly", folder.anomalous)):
        ids = {_image_id(path.read_bytes()) for path in paths}
        if sum(held_out(i) for i in ids) < 1:
            raise UsageProblem(f"--images {train / kind}: none of its {len(ids)} images falls in the held-out "
                               f"{HOLDOUT_PERCENT} % (chosen by image id) on which `batchsight model publish` measures "
                               "a version; add images to it, or give --backend local")
    return train


def fit_version(training: Path, *, method: str, output: Path, what: str, dataset: str = "",
                aws: tuple[str, ...] = (), split: tuple[int, int] | None = None) -> Fitted:
    """`batchsight model fit` on the training split of ``dataset`` (by default the folder ``training``);
    ``split``: its normal and anomaly images outside the held-out split (by default the folder's)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    outcome = model_commands.run("model", "fit", "--dataset", dataset or str(training), "--method", method,
                                 "--output", str(output), *aws)
    if not outcome.ok:
        raise UsageProblem(outcome.error)
    seconds = time.perf_counter() - started
    normal, anomaly = split or _training_split(training)
    return Fitted(output, method, f"{method} on the training split of {what} ({normal} normal, {anomaly} anomaly; "
                                  f"the anomaly images set the threshold), fitted with `batchsight model fit` in "
                                  f"{seconds:.1f} s")


def _training_split(training: Path) -> tuple[int, int]:
    """Images of the folder outside the held-out split, normal and anomaly."""
    def fitted(kind: str) -> int:
        folder = training / kind
        paths = [p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES] if folder.is_dir() else []
        return len({i for i in (_image_id(p.read_bytes()) for p in paths) if not held_out(i)})

    return fitted("normal"), fitted("anomaly")
