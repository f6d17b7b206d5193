"""The checks of `batchsight fit`, `evaluate` and `serve` arguments: a wrong value is one line.

Why a module of its own: the three commands share them (folders of images, model files,
sizes), and each message says what is wrong and what to give instead, so a person never
has to read a traceback or numpy's advice to find out which file or option is at fault.
Argparse types raise argparse.ArgumentTypeError (argparse prints it with the usage, exit 2);
the checks that need the file system raise UsageError (the command prints it, exit 2).
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from PIL import Image

from .evaluation import IMAGE_SUFFIXES, image_files
from .features import DECODE_ERRORS, cannot_decode
from .fitting import MIN_NORMAL_IMAGES
from .patchcore import TRANSFORMS

SIZES = (16, 1024)   # --working-size: features.Preprocessing's range
MODEL_ADVICE = "give the .npz that 'batchsight fit --output MODEL.npz' writes"
IMAGE_ADVICE = "remove it from the folder or replace it with a readable JPEG or PNG"


class UsageError(Exception):
    """A wrong argument found after parsing; the message is the one line the user sees."""


def working_size(text: str) -> int:
    """--working-size: whole pixels within SIZES."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not SIZES[0] <= value <= SIZES[1]:
        raise argparse.ArgumentTypeError(f"must be a whole number of pixels from {SIZES[0]} to {SIZES[1]}, "
                                         f"got {text!r}")
    return value


def augment(text: str) -> str | list[str]:
    """--augment: "auto", "none", or transform names separated by commas."""
    if text in ("auto", "none"):
        return text
    names = [name.strip() for name in text.split(",")]
    wrong = [name for name in names if name not in TRANSFORMS]
    if wrong:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(map(repr, wrong))}: give auto, none, or names "
                                         f"from {', '.join(TRANSFORMS)} separated by commas")
    return names


def port(text: str) -> int:
    """--port: a TCP port (0: any free one)."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return int(text)


def log_level(text: str) -> str:
    """LOG_LEVEL: a name logging knows."""
    level = text.strip().upper()
    if not isinstance(logging.getLevelName(level), int):
        raise UsageError(f"LOG_LEVEL {text!r} is not a log level: set DEBUG, INFO, WARNING or ERROR")
    return level


def images(option: str, folder: str, *, minimum: int = 1, what: str = "images", hint: str = "") -> list[Path]:
    """The image files of the folder an option names; UsageError when it is missing, holds
    fewer than `minimum`, or holds a file that is not an image (its header, read now, so a
    long fit does not end on it)."""
    path = Path(folder)
    if not path.is_dir():
        kind = "a file, not a folder" if path.exists() else "no such folder"
        raise UsageError(f"{option} {folder}: {kind}; give the folder of {what}")
    files = image_files(path)
    if len(files) < minimum:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        need = (f"at least {minimum} {what}" if minimum > 1 else what)
        count = f"{len(files) or 'no'} image{'' if len(files) == 1 else 's'}"
        raise UsageError(f"{option} {folder} holds {count} ({suffixes}); put {need} in it{hint}")
    for file in files:
        try:
            with Image.open(file):   # the header only: the whole picture is decoded by fit
                pass
        except DECODE_ERRORS as exc:
            raise UsageError(f"{file}: {cannot_decode(exc)}; {IMAGE_ADVICE}") from exc
    return files


def normal_images(folder: str) -> list[Path]:
    """--normal: enough pictures of good parts to fit on."""
    return images("--normal", folder, minimum=MIN_NORMAL_IMAGES, what="pictures of good parts",
                  hint=" (20 or more set a steadier threshold)")


def labelled_folder(folder: str) -> Path:
    """--test: a folder with normal/ and anomaly/, each holding images."""
    path = Path(folder)
    if not path.is_dir():
        raise UsageError(f"--test {folder}: {'a file, not a folder' if path.exists() else 'no such folder'}; "
                         "give a folder with normal/ and anomaly/ subfolders of labelled images")
    missing = [name for name in ("normal", "anomaly") if not (path / name).is_dir()]
    if missing:
        raise UsageError(f"--test {folder} has no {' and no '.join(name + '/' for name in missing)}; "
                         "put images of good parts in normal/ and of defective ones in anomaly/")
    for name in ("normal", "anomaly"):
        images("--test", str(path / name), what="labelled images (AUROC needs both kinds)")
    return path


def model_file(option: str, file: str) -> Path:
    """A model file that exists (whether it is one, loading says)."""
    path = Path(file)
    if not path.is_file():
        kind = "a folder, not a file" if path.is_dir() else "no such file"
        raise UsageError(f"{option} {file}: {kind}; {MODEL_ADVICE}")
    return path


def output_file(option: str, file: str) -> Path:
    """A file to write: not a folder."""
    path = Path(file)
    if path.is_dir():
        raise UsageError(f"{option} {file} is a folder; give a file name such as {path / 'model.npz'}")
    return path
