"""Labelled image datasets for evaluation, calibration and training.

Sources (``--data``):
- ``digits``: the handwritten digits that scikit-learn ships (1797 grey 8x8 images, 10 classes),
  split deterministically into train (80%) and held-out (20%, stratified, seed 0), upscaled
  bilinearly to the model's image size. Nothing is downloaded.
- ``photos``: seeded random square crops (with horizontal flips) of the two colour photographs
  that scikit-learn ships (427x640, "china" and "flower"), cut at the model's image size (at most
  427 px): 256 crops for the train split, 64 for the held-out one. Calibration data for colour
  models; its two "classes" are the source photos, so it measures no accuracy.
- a folder with one sub-folder of images per class (sub-folder names sorted give label ids);
- an ``.npz`` file with ``images`` (N, H, W), (N, H, W, C) or (N, C, H, W), uint8 in 0..255 or
  float in 0..1, and integer ``labels`` (N,).

Images are converted to the model's channel count, resized to its image size and normalised with
its mean/std, giving float32 arrays (N, C, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .models.config import ModelConfig

Split = Literal["train", "test"]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
DIGITS_TEST_FRACTION = 0.2
DIGITS_SEED = 0
BUILTIN_DATA = ("digits", "photos")
PHOTO_CROPS = {"train": (256, 0), "test": (64, 1)}  # split -> (crops, seed)


@dataclass(frozen=True)
class InputSpec:
    """What a model takes: one sample's shape (C, H, W) or (C, T, H, W), and its normalisation."""

    input_shape: tuple[int, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_chans(self) -> int:
        return self.input_shape[0]

    @property
    def image_size(self) -> int:
        return self.input_shape[-1]

    @property
    def is_video(self) -> bool:
        return len(self.input_shape) == 4


@dataclass
class LabelledData:
    images: np.ndarray  # (N, C, H, W) float32, normalised for the model
    labels: np.ndarray  # (N,) int64
    source: str
    class_names: list[str]
    native_shape: tuple[int, ...] | None = None  # one image (C, H, W) as stored, before preparation

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int):
        for i in range(0, len(self), batch_size):
            yield self.images[i : i + batch_size], self.labels[i : i + batch_size]


def load_data(source: str | Path, config: ModelConfig | InputSpec, split: Split = "test") -> LabelledData:
    """Load ``source`` (``digits``, a class-folder directory or an ``.npz``) prepared for ``config``."""
    if config.is_video:
        raise UserError(
            "Labelled image datasets cannot feed a video model.",
            "Evaluate an image variant, or use random inputs for video models.",
        )
    if str(source) == "digits":
        raw, labels, names = _digits(split)
        where = f"digits ({split} split)"
    elif str(source) == "photos":
        raw, labels, names = _photos(split, config.image_size)
        where = f"photos ({split} split)"
    else:
        path = Path(source)
        if path.is_dir():
            raw, labels, names = _folder(path)
        elif path.suffix == ".npz" and path.is_file():
            raw, labels, names = _npz(path)
        else:
            raise UserError(
                f"Cannot read dataset {source!r}: it is neither 'digits', a folder, nor an .npz file.",
                "Pass --data digits, a folder with one sub-folder of images per class, or an .npz "
                "with 'images' and 'labels'.",
            )
        where = str(path)
    images = prepare_images(raw, config)
    return LabelledData(images, labels.astype(np.int64), where, names, tuple(int(v) for v in raw.shape[1:]))


def prepare_images(raw: np.ndarray, config: ModelConfig | InputSpec) -> np.ndarray:
    """(N, C, H, W) float in 0..1 -> channels, size and normalisation of ``config``."""
    x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
    c = x.shape[1]
    if c != config.in_chans:
        if c == 3 and config.in_chans == 1:
            x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        elif c == 1:
            x = x.expand(-1, config.in_chans, -1, -1)
        else:
            raise UserError(f"Images have {c} channels; the model takes {config.in_chans}.")
    size = config.image_size
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    mean = torch.tensor(config.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(config.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - mean) / std).numpy()


def _digits(split: Split) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = (d.images / 16.0).astype(np.float32)[:, None]  # (1797, 1, 8, 8) in 0..1
    tr_x, te_x, tr_y, te_y = train_test_split(
        images, d.target, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SEED, stratify=d.target
    )
    x, y = (tr_x, tr_y) if split == "train" else (te_x, te_y)
    return x, y, [str(i) for i in range(10)]


def _photos(split: Split, size: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    count, seed = PHOTO_CROPS[split]
    rng = np.random.default_rng(seed)
    side = min(size, *(min(im.shape[:2]) for im in photos.images))
    crops, labels = [], []
    for i in range(count):
        which = i % len(photos.images)
        im = photos.images[which]  # (H, W, 3) uint8
        y = int(rng.integers(0, im.shape[0] - side + 1))
        x = int(rng.integers(0, im.shape[1] - side + 1))
        crop = im[y : y + side, x : x + side]
        crops.append(crop[:, ::-1] if rng.random() < 0.5 else crop)
        labels.append(which)
    names = [Path(f).stem for f in photos.filenames]
    return _to_nchw01(np.stack(crops), "photos"), np.array(labels), names


def _to_nchw01(images: np.ndarray, where: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3, 4) and images.shape[1] not in (1, 3, 4):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4 or images.shape[1] not in (1, 3, 4):
        raise UserError(
            f"{where}: images of shape {images.shape} are not (N, H, W), (N, H, W, C) or (N, C, H, W).",
            "Store images with 1 or 3 channels in one of those layouts.",
        )
    images = images[:, :3]  # drop alpha
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    hint = ("An .npz dataset needs arrays 'images' and 'labels': images (N, H, W[, C]) and one integer class index "
            "0..K-1 per image.")
    try:
        data = np.load(path)  # allow_pickle=False: an object array is refused, never unpickled
        names = list(data.files)
        missing = [k for k in ("images", "labels") if k not in names]
        if missing:
            raise UserError(f"{path} has no array {' and no array '.join(repr(k) for k in missing)} (it holds "
                            f"{', '.join(repr(n) for n in names[:8]) or 'no arrays'}).", hint)
        images, labels = data["images"], data["labels"]
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"Cannot read {path}: {e}", hint) from None
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise UserError(f"{path}: 'labels' is an array of {labels.dtype} with shape {list(labels.shape)}; expected "
                        "one integer class index per image.", hint)
    if len(images) != len(labels):
        raise UserError(f"{path}: {len(images)} images but {len(labels)} labels.", hint)
    if len(labels) and int(labels.min()) < 0:
        bad = int(np.count_nonzero(labels < 0))
        raise UserError(f"{path}: {bad} label(s) are negative (the smallest is {int(labels.min())}); a label is a "
                        "class index 0..K-1.", hint)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    return _to_nchw01(images, str(path)), labels, [str(i) for i in range(n_classes)]


def _folder(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise UserError(f"{path} has no class sub-folders.", "Put each class's images in its own sub-folder.")
    images, labels = [], []
    shape = None
    for label, name in enumerate(classes):
        for f in sorted((path / name).iterdir()):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB"))  # (H, W, 3) uint8
            except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
                raise UserError(
                    f"{f} is not a readable image ({type(e).__name__}).",
                    f"Remove or replace it: every file of a class folder with an image suffix "
                    f"({', '.join(sorted(IMAGE_SUFFIXES))}) must be an image.",
                ) from None
            if shape is None:
                shape = arr.shape
            elif arr.shape != shape:  # bring every image to the first one's size
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB").resize((shape[1], shape[0]), Image.BILINEAR))
            images.append(arr)
            labels.append(label)
    if not images:
        raise UserError(
            f"{path}: no images found in {len(classes)} class folders.",
            f"Put image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in one sub-folder per class.",
        )
    return _to_nchw01(np.stack(images), str(path)), np.array(labels), classes
