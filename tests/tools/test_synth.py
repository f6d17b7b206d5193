"""The synthetic part generator: deterministic, labelled outside the file name, decodable."""
from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from batchsight_tools.synth import DEFECTS, SynthImage, generate, generate_training_set, render_part
from PIL import Image


def _files(images: list[SynthImage]) -> list[tuple[str, bytes]]:
    return [(img.path.name, img.path.read_bytes()) for img in images]


def test_same_seed_gives_the_same_bytes(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", count=12, size=96, seed=7)
    again = generate(tmp_path / "b", count=12, size=96, seed=7)
    other = generate(tmp_path / "c", count=12, size=96, seed=8)

    assert _files(first) == _files(again)
    assert [(img.label, img.defect) for img in first] == [(img.label, img.defect) for img in again]
    assert [data for _, data in _files(first)] != [data for _, data in _files(other)]


def test_label_mix_covers_every_defect(tmp_path: Path) -> None:
    images = generate(tmp_path, count=40, anomaly_rate=0.25, size=64, seed=1)

    labels = Counter(img.label for img in images)
    assert labels == {"normal": 30, "anomaly": 10}
    assert all((img.defect is None) == (img.label == "normal") for img in images)
    assert {img.defect for img in images if img.defect} == set(DEFECTS)


def test_file_names_do_not_reveal_the_label(tmp_path: Path) -> None:
    images = generate(tmp_path, count=60, size=64, seed=2)

    assert [img.path.name[:10] for img in images] == [f"part_{i:05d}" for i in range(60)]
    assert all(re.fullmatch(r"part_\d{5}\.(jpg|png)", img.path.name) for img in images)
    assert {img.path.suffix for img in images} == {".jpg", ".png"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(img.path.name for img in images)


def test_frames_decode_at_the_requested_size(tmp_path: Path) -> None:
    for img in generate(tmp_path, count=6, size=80, seed=3):
        with Image.open(img.path) as frame:
            assert frame.format == ("PNG" if img.path.suffix == ".png" else "JPEG")
            assert frame.size == (80, 80) and frame.mode == "RGB"


def test_training_set_is_normal_jpeg_from_another_stream(tmp_path: Path) -> None:
    training = generate_training_set(5, size=64, seed=0)
    frames = generate(tmp_path, count=5, anomaly_rate=0.0, size=64, seed=0)
    demo = {data for _, data in _files(frames)}

    assert training == generate_training_set(5, size=64, seed=0)
    assert all(Image.open(io.BytesIO(data)).format == "JPEG" for data in training)
    assert not demo & set(training)


@pytest.mark.parametrize("defect", DEFECTS)
def test_each_defect_changes_the_part(defect: str) -> None:
    normal = np.asarray(render_part(np.random.default_rng(4), size=128, defect=None), dtype=float)
    broken = np.asarray(render_part(np.random.default_rng(4), size=128, defect=defect), dtype=float)

    # Same random stream up to the defect, so the part differs only locally and clearly.
    changed = np.abs(broken - normal).max(axis=2) > 25
    assert 5 < changed.sum() < 0.05 * changed.size


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="anomaly_rate"):
        generate(tmp_path, count=3, anomaly_rate=1.5)
    with pytest.raises(ValueError, match="unknown defect"):
        render_part(np.random.default_rng(0), size=64, defect="dent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size"):
        render_part(np.random.default_rng(0), size=16, defect=None)
