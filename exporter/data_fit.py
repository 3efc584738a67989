"""Whether labelled data fits a model, so that an accuracy figure means something.

Top-1 on a dataset is only a measurement of the model when the model was made for that kind of data:
its classifier has one output per class of the dataset, it takes the dataset's channels, and the
images are not stretched far from their stored size. A model with random weights (``seed:N`` weights
id: no checkpoint) has no accuracy to measure at all. Where these do not hold, ``compare`` and
``evaluate`` refuse (exit 2) unless ``--allow-meaningless`` is given, and then the figures are marked
"not meaningful" and never PASSED.

Calibration data for int8/fp8 sets the quantisation scales of the graph's activations; data of
other channels or far from the model's image size gives scales for activations the model never sees,
so it is refused with a hint naming ``--calib``.

Rules (each one a sentence in the error):
- classes: the model's logits count equals the dataset's class count;
- channels: grey data (1 channel) is not replicated onto a colour model (3 channels);
- size: the model's side over the stored side lies in [1/2, 4] (the bundled digits, 8 px, feed
  32-px models: the 4x upscaling they were trained with).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .data import InputSpec, LabelledData
from .errors import UserError

MAX_UPSCALE = 4.0
MAX_DOWNSCALE = 2.0


@dataclass(frozen=True)
class Fit:
    """What makes top-1 of a model on a dataset meaningless; empty when it is meaningful."""

    problems: list[str] = field(default_factory=list)

    @property
    def meaningful(self) -> bool:
        return not self.problems


def input_problems(data: LabelledData, spec: InputSpec) -> list[str]:
    """Channel and size mismatches between the stored images and the model's input."""
    problems = []
    native = data.native_shape
    if native is None:
        return problems
    c, side = native[0], native[-1]
    if c == 1 and spec.in_chans > 1:
        problems.append(f"{data.source} holds grey images; the model takes {spec.in_chans} channels")
    ratio = spec.image_size / side
    if ratio > MAX_UPSCALE or ratio < 1 / MAX_DOWNSCALE:
        problems.append(
            f"{data.source} stores {side}-px images; the model takes {spec.image_size} px "
            f"(a {ratio:.3g}x resize, outside 1/{MAX_DOWNSCALE:g}x to {MAX_UPSCALE:g}x)"
        )
    return problems


def accuracy_fit(data: LabelledData, spec: InputSpec, classes: int | None, weights_id: str | None) -> Fit:
    """Whether top-1 of a model (``classes`` logits; None: no logits) on ``data`` means anything."""
    problems = []
    if weights_id is not None and weights_id.startswith("seed:"):
        problems.append("the model has random weights (a seeded initialisation, no checkpoint)")
    if classes is None:
        problems.append("the model has no class logits (a feature head)")
    elif classes != len(data.class_names):
        problems.append(f"the model has {classes} classes; {data.source} has {len(data.class_names)}")
    problems += input_problems(data, spec)
    return Fit(problems)


def require_meaningful(fit: Fit, what: str, allow: bool) -> list[str]:
    """Refuse a meaningless accuracy measurement, or (``allow``) return the notes that mark it."""
    if fit.meaningful:
        return []
    if allow:
        return [f"not meaningful: {p}" for p in fit.problems]
    raise UserError(
        f"Top-1 of {what} would not mean anything: {'; '.join(fit.problems)}.",
        "Give the checkpoint the model was trained with (--weights), a dataset of its classes and input (--data), "
        "or pass --allow-meaningless to see the figures marked 'not meaningful' (never PASSED).",
    )


def require_calibration_fit(data: LabelledData, spec: InputSpec, calib: str) -> None:
    """Refuse calibration data that does not match the model's input."""
    problems = input_problems(data, spec)
    if problems:
        raise UserError(
            f"Calibration data {calib!r} does not match the model's input: {'; '.join(problems)}. Scales calibrated "
            "on it would describe activations the model never sees.",
            f"Pass --calib with images like the model's inputs ({spec.in_chans} channels, about {spec.image_size} px): "
            "a folder of class sub-folders or an .npz.",
        )
