"""The onnxruntime-based detectors: method="patchcore" and exported (anomalib-style) ONNX models."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from batchsight_detector import DetectorModel, fit, load, mask_png  # noqa: E402
from batchsight_detector.calibration import gumbel_fit, unsupervised_threshold  # noqa: E402
from batchsight_detector.patchcore import PatchMemory, coreset, input_size  # noqa: E402
from batchsight_tools.synth import SynthImage, generate, generate_training_set  # noqa: E402
from PIL import Image  # noqa: E402

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _memory(model: DetectorModel) -> PatchMemory:
    """The memory bank of a patchcore model."""
    assert isinstance(model.bank, PatchMemory)
    return model.bank


@pytest.fixture(scope="module")
def training() -> list[bytes]:
    return generate_training_set(16, seed=21)


@pytest.fixture(scope="module")
def model(training: list[bytes]) -> DetectorModel:
    return fit(training, method="patchcore", working_size=128)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> list[SynthImage]:
    return generate(tmp_path_factory.mktemp("camera"), count=24, anomaly_rate=0.5, seed=22)


def test_patchcore_ranks_synthetic_defects_above_good_parts(
    model: DetectorModel, frames: list[SynthImage]
) -> None:
    scores = np.array([model.score(f.path.read_bytes()) for f in frames])
    labels = np.array([f.label == "anomaly" for f in frames])
    pairs = [(a > n) + 0.5 * (a == n) for a in scores[labels] for n in scores[~labels]]
    assert np.mean(pairs) >= 0.8


def test_patchcore_result_shape_and_confidence(model: DetectorModel,
                                               frames: list[SynthImage]) -> None:
    for frame in frames[:6]:
        verdict = model.detect(frame.path.read_bytes())
        assert set(verdict) == {"Source", "IsAnomalous", "Confidence"}
        assert type(verdict["IsAnomalous"]) is bool and 0.5 <= verdict["Confidence"] <= 1.0


def test_patchcore_saves_as_format_version_3_and_round_trips(
    model: DetectorModel, frames: list[SynthImage], tmp_path: Path
) -> None:
    path = tmp_path / "pc.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        metadata = json.loads(str(npz["metadata"]))
        assert set(npz.files) == {"metadata", "memory", "held_out_scores"}
    assert metadata["format_version"] == 3 and metadata["method"] == "patchcore"
    assert len(metadata["features"]["sha256"]) == 64
    assert metadata["memory"]["border"] == 1
    assert metadata["memory"]["augmentation"] == list(model.augmentation)
    assert set(metadata["memory"]["augmentation_check"]) == {
        "flip_h", "flip_v", "rot180", "rot90", "rot270"}
    assert metadata["threshold_rule"].startswith("robust Gumbel fit")
    loaded = load(path)
    assert loaded.method == "patchcore" and loaded.threshold == model.threshold
    assert loaded.augmentation == model.augmentation and _memory(loaded).ordered
    data = frames[0].path.read_bytes()
    assert loaded.score(data) == pytest.approx(model.score(data), rel=1e-5)


def test_a_version_2_patchcore_file_still_loads_and_scores_as_before(
    model: DetectorModel, frames: list[SynthImage], tmp_path: Path
) -> None:
    """Version 2: no border, no augmentation, memory in index order (not a coreset prefix)."""
    path = tmp_path / "v2.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    metadata = json.loads(str(entries["metadata"]))
    metadata["format_version"] = 2
    metadata["memory"] = {"patches": metadata["memory"]["patches"],
                          "selection": "greedy k-center coreset",
                          "score": "max over patches of the distance to the nearest memory patch"}
    entries["metadata"] = np.array(json.dumps(metadata))
    entries["memory"] = np.sort(entries["memory"], axis=0)   # any order: v2 sorted by index
    np.savez(path, **entries)

    old = load(path)
    assert _memory(old).border == 0 and not _memory(old).ordered and old.augmentation == ()
    for frame in frames[:4]:
        data = frame.path.read_bytes()
        full = old._patch_distances(data)[0]                 # the whole map, border included
        assert old.score(data) == pytest.approx(float(full.max()), rel=1e-5)


def test_max_distance_is_the_exact_maximum_of_the_map() -> None:
    rng = np.random.default_rng(3)
    normal = rng.standard_normal((6, 16, 9, 11)).astype(np.float32)
    for ordered in (True, False):
        bank = PatchMemory.fit(normal, (88, 72), ratio=0.3, max_patches=10_000)
        bank.ordered = ordered
        bank.__post_init__()
        for scale in (1.0, 1.5, 3.0):
            query = (scale * rng.standard_normal((16, 9, 11))).astype(np.float32)
            query[:, 4, 5] += 6.0                                # one strange patch
            dmap = bank.distance_map(query)
            assert bank.max_distance(query) == pytest.approx(float(dmap.max()), rel=1e-5)
            # The border ring repeats its inner neighbour, so the map's max is the inner max.
            assert dmap[0, 3] == dmap[1, 3] and dmap[-1, -1] == dmap[-2, -2]


def test_augmentation_is_checked_and_can_be_forced(training: list[bytes]) -> None:
    forced = fit(training[:6], method="patchcore", working_size=64, augment=["flip_h"])
    assert forced.augmentation == ("flip_h",) and forced.augmentation_check == {}
    plain = fit(training[:6], method="patchcore", working_size=64, augment="none")
    assert plain.augmentation == () and len(_memory(plain).patches) < len(_memory(forced).patches)
    with pytest.raises(ValueError, match="augment"):
        fit(training[:6], method="patchcore", working_size=64, augment="sideways")
    assert fit(training[:6], method="patchcore", working_size=64,
               augment="rot90").augmentation == ("rot90",)
    with pytest.raises(ValueError, match="not usable"):
        fit(training[:6], method="patchcore", working_size=64, augment=["rot45"])


def test_unsupervised_threshold_hits_its_false_alarm_rate() -> None:
    rng = np.random.default_rng(5)
    rates = []
    for _ in range(200):
        held_out = rng.gumbel(40.0, 2.0, size=30)
        threshold = unsupervised_threshold(held_out)
        rates.append(np.exp(-np.exp(-(threshold - 40.0) / 2.0)))   # Gumbel CDF at it
    assert 0.95 < np.median(rates) < 0.995                       # about 1 - 0.02
    # One odd image in training barely moves the fit (quartiles, not moments).
    held_out = rng.gumbel(40.0, 2.0, size=30)
    assert abs(gumbel_fit(np.append(held_out, 90.0))[1] - gumbel_fit(held_out)[1]) < 0.5


def test_aligned_models_still_write_and_read_version_1(training: list[bytes],
                                                       tmp_path: Path) -> None:
    aligned = fit(training[:6], working_size=64)
    path = tmp_path / "v1.npz"
    aligned.save(path)
    with np.load(path, allow_pickle=False) as npz:
        assert json.loads(str(npz["metadata"]))["format_version"] == 1
    assert load(path).method == "aligned"


def test_a_model_from_another_feature_extractor_is_refused(model: DetectorModel,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "pc.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    metadata = json.loads(str(entries["metadata"]))
    metadata["features"]["sha256"] = "0" * 64
    entries["metadata"] = np.array(json.dumps(metadata))
    np.savez(path, **entries)
    with pytest.raises(ValueError, match="refit"):
        load(path)


def test_anomaly_map_has_the_image_size_and_peaks_at_the_score(
    model: DetectorModel, frames: list[SynthImage]
) -> None:
    data = next(f for f in frames if f.label == "anomaly").path.read_bytes()
    amap = model.anomaly_map(data)
    with Image.open(io.BytesIO(data)) as img:
        assert amap.shape == (img.height, img.width)
    assert amap.dtype == np.float32
    assert amap.max() == pytest.approx(model.score(data), rel=0.05)
    png = model.anomaly_mask_png(data)
    with Image.open(io.BytesIO(png)) as mask:
        assert mask.format == "PNG" and mask.mode == "L" and mask.size == (amap.shape[1],
                                                                            amap.shape[0])
        assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_aligned_method_has_an_anomaly_map_too(training: list[bytes],
                                               frames: list[SynthImage]) -> None:
    aligned = fit(training[:6], working_size=64)
    data = frames[0].path.read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        assert aligned.anomaly_map(data).shape == (img.height, img.width)


def test_mask_png_marks_values_above_the_threshold() -> None:
    values = np.array([[0.0, 2.0], [3.0, 1.0]], dtype=np.float32)
    with Image.open(io.BytesIO(mask_png(values, 1.5))) as mask:
        assert np.asarray(mask).tolist() == [[0, 255], [255, 0]]


def test_patchcore_rejects_undecodable_images(model: DetectorModel) -> None:
    for bad in (b"", b"junk"):
        with pytest.raises(ValueError, match="cannot decode image"):
            model.detect(bad)
    with pytest.raises(ValueError, match="normal image 3"):
        fit([*generate_training_set(3, seed=1), b"junk"], method="patchcore", working_size=64)
    with pytest.raises(ValueError, match="method"):
        fit(generate_training_set(3, seed=1), method="magic")


def test_input_size_keeps_the_aspect_in_multiples_of_32() -> None:
    assert input_size(2000, 1334, None) == (576, 384)
    assert input_size(512, 512, None) == (256, 256)
    assert input_size(1334, 2000, 576) == (384, 576)


def test_coreset_covers_every_cluster() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[0.0] * 8, [50.0] * 8, [-50.0] * 8], dtype=np.float32)
    points = np.concatenate([c + rng.standard_normal((200, 8)).astype(np.float32)
                             for c in centers])
    chosen = points[coreset(points, 6)]
    nearest = np.argmin(((chosen[:, None] - centers[None]) ** 2).sum(-1), axis=1)
    assert set(nearest.tolist()) == {0, 1, 2}


# --- an exported anomaly model (anomalib's ONNX I/O) -------------------------------------

def _anomalib_like_onnx(path: Path, size: int = 32) -> Path:
    """A tiny stand-in for an anomalib export: input "input" (1, 3, size, size) in 0..1;
    "anomaly_map" (1, 1, size, size) = mean over channels; "pred_score" (1,) = its maximum."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input", "axes"], ["anomaly_map"], keepdims=1),
         helper.make_node("ReduceMax", ["anomaly_map"], ["max4"], keepdims=0),
         helper.make_node("Reshape", ["max4", "shape1"], ["pred_score"])],
        "anomalib_like",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, [1]),
         helper.make_tensor_value_info("anomaly_map", TensorProto.FLOAT, [1, 1, size, size])],
        initializer=[helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
                     helper.make_tensor("shape1", TensorProto.INT64, [1], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_anomalib_style_onnx_model_detects(tmp_path: Path) -> None:
    path = _anomalib_like_onnx(tmp_path / "model.onnx")
    model = DetectorModel.from_onnx(path, threshold=0.5)
    assert model.input_size == (32, 32)

    dark = np.full((48, 64, 3), 20)
    bright_spot = dark.copy()
    bright_spot[10:30, 20:40] = 250
    normal, defect = model.detect(_png(dark)), model.detect(_png(bright_spot))
    assert set(normal) == {"Source", "IsAnomalous", "Confidence"}
    assert normal["IsAnomalous"] is False and defect["IsAnomalous"] is True
    assert normal["Confidence"] > 0.95 and defect["Confidence"] > 0.95
    assert model.score(_png(bright_spot)) == pytest.approx(250 / 255, abs=0.02)

    amap = model.anomaly_map(_png(bright_spot))
    assert amap.shape == (48, 64)
    assert amap[20, 30] > 0.9 and amap[2, 2] < 0.2
    with Image.open(io.BytesIO(model.anomaly_mask_png(_png(bright_spot)))) as mask:
        assert mask.size == (64, 48) and np.asarray(mask)[20, 30] == 255


def test_onnx_model_calibration_and_imagenet_option(tmp_path: Path) -> None:
    path = _anomalib_like_onnx(tmp_path / "model.onnx")
    model = DetectorModel.from_onnx(path, threshold=0.5).calibrate(
        [_png(np.full((32, 32, 3), v)) for v in (10, 20, 30, 40, 80)])
    assert 0 < model.score_spread < 0.2
    normalised = DetectorModel.from_onnx(path, threshold=0.5, normalize="imagenet")
    assert normalised.score(_png(np.full((32, 32, 3), 255))) > 2.0   # (1 - mean) / std
    with pytest.raises(ValueError, match="normalize"):
        DetectorModel.from_onnx(path, normalize="weird")


def _real_set(name: str) -> tuple[DetectorModel, np.ndarray, np.ndarray]:
    root = DATA / name

    def read(folder: str) -> list[bytes]:
        return [p.read_bytes() for p in sorted((root / folder).iterdir())]

    detector = fit(read("train/normal"), method="patchcore")
    normal = np.array([detector.score(data) for data in read("test/normal")])
    anomalous = np.array([detector.score(data) for data in read("test/anomaly")])
    return detector, normal, anomalous


def _auroc_and_f1(normal: np.ndarray, anomalous: np.ndarray,
                  threshold: float) -> tuple[float, float]:
    auroc = float(np.mean([(a > n) + 0.5 * (a == n) for a in anomalous for n in normal]))
    tp, fp = int((anomalous > threshold).sum()), int((normal > threshold).sum())
    f1 = 2 * tp / (2 * tp + fp + (len(anomalous) - tp))
    return auroc, f1


@pytest.mark.skipif(not (DATA / "circuitboard").is_dir(), reason="no shared circuit-board images")
def test_patchcore_ranks_real_circuit_boards_well() -> None:
    detector, normal, anomalous = _real_set("circuitboard")
    auroc, f1 = _auroc_and_f1(normal, anomalous, detector.threshold)
    assert detector.augmentation == ()                     # a turned board is not a good board
    assert auroc >= 0.95, f"circuit board AUROC {auroc:.3f} (measured 0.970 when written)"
    assert f1 >= 0.75, f"circuit board F1 {f1:.3f} at the unsupervised threshold (measured 0.88)"


@pytest.mark.skipif(not (DATA / "casting").is_dir(), reason="no shared casting images")
def test_patchcore_ranks_real_castings_well() -> None:
    detector, normal, anomalous = _real_set("casting")
    auroc, f1 = _auroc_and_f1(normal, anomalous, detector.threshold)
    assert set(detector.augmentation) == {"flip_h", "flip_v", "rot180"}   # lit from one side
    assert auroc >= 0.82, f"casting AUROC {auroc:.3f} (measured 0.860 when written)"
    assert f1 >= 0.45, f"casting F1 {f1:.3f} at the unsupervised threshold (measured 0.63)"
