"""`batchsight model` and `batchsight dataset` as a person meets them: help, fit and evaluate offline, and the
whole loop on real casting images with the default method (patchcore)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from batchsight_detector import DetectorModel
from batchsight_detector.fitting import fingerprint
from batchsight_tools.dataset import cli as dataset_cli
from batchsight_tools.dataset.loading import load
from batchsight_tools.models import cli
from tests.tools import models_support
from tests.tools.models_support import CASTING, Aws

moto_endpoint, aws, labelled = models_support.moto_endpoint, models_support.aws, models_support.labelled


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {f"{parser.prog} {name}": sub for name, sub in action.choices.items()}


PARSERS = {**_subcommands(cli.build_parser()), **_subcommands(dataset_cli.build_parser())}


@pytest.mark.parametrize("command", sorted(PARSERS))
def test_every_option_has_a_help_text_with_its_default(command: str) -> None:
    options = [a for a in PARSERS[command]._actions if not isinstance(a, argparse._HelpAction)]
    assert options
    for action in options:
        text = action.help or ""
        assert "default" in text or (action.required and "required" in text), \
            f"{command} {action.option_strings}: {text!r} names no default"
        assert "``" not in text


def test_fit_and_evaluate_on_a_folder_need_no_aws(labelled: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")   # nothing listens: any AWS call would fail
    output = tmp_path / "model.npz"
    assert cli.main(["fit", "--dataset", str(labelled), "--output", str(output), "--method", "aligned",
                     "--working-size", "64"]) == 0
    dataset = load(str(labelled), lambda: None)
    training_normals = [image.data for image in dataset.training() if not image.anomalous]
    model = DetectorModel.load(output)
    assert model.training_fingerprint == fingerprint(training_normals)       # the held-out images were not fitted on
    assert model.n_anomalous == sum(image.anomalous for image in dataset.training())
    assert "images held out (20 % by image id)" in capsys.readouterr().out
    assert cli.main(["evaluate", "--model", str(output), "--dataset", str(labelled)]) == 0
    out = capsys.readouterr().out
    assert "on the held-out 20 %" in out and "AUROC" in out and "confusion matrix" in out


def test_augment_goes_with_patchcore_only(labelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["fit", "--dataset", str(labelled), "--output", str(tmp_path / "m.npz"), "--method", "aligned",
                     "--augment", "none"]) == 2
    assert "--augment applies to --method patchcore only" in capsys.readouterr().err


@pytest.mark.skipif(not (CASTING / "train").is_dir(), reason="no shared casting images")
def test_the_whole_loop_on_real_castings_with_the_default_method(aws: Aws, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """dataset build -> model fit (patchcore, `batchsight fit`'s defaults) -> evaluate -> publish -> deploy."""
    assert dataset_cli.main(["build", "--bucket", aws.bucket, "--name", "castings", "--folder",
                             str(CASTING / "train"), *aws.args]) == 0
    manifest = f"s3://{aws.bucket}/datasets/castings/manifest.jsonl"
    model = tmp_path / "castings.npz"
    assert cli.main(["fit", "--dataset", manifest, "--output", str(model), *aws.args]) == 0
    assert DetectorModel.load(model).method == "patchcore"
    assert cli.main(["publish", "--bucket", aws.bucket, "--name", "castings", "--model", str(model), "--dataset",
                     manifest, *aws.args]) == 0
    assert cli.main(["deploy", "--bucket", aws.bucket, "--name", "castings", "--version", "1", *aws.args]) == 0
    package = json.loads(aws.s3.get_object(Bucket=aws.bucket, Key="models/castings/1/package.json")["Body"].read())
    assert package["detector"]["method"] == "patchcore" and package["dataset"]["manifest"] == manifest
    assert package["metrics"]["auroc"] >= 0.9, package["metrics"]
    assert package["metrics"]["images"]["normal"] >= 3 and package["metrics"]["images"]["anomaly"] >= 3
    capsys.readouterr()
    assert cli.main(["list", "--bucket", aws.bucket, "--name", "castings", *aws.args]) == 0
    assert "current" in capsys.readouterr().out
