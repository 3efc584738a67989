"""What every backend's timer shares: the :class:`Timer` a latency sweep calls, and the reasons a
backend gives for a cell it cannot run (docs/architecture.md, The backend axis).

A :class:`Timer` holds a loaded model and a fixed input batch and runs one synchronous inference
per call, returning its wall time in seconds. Device work is synchronised before the clock stops.
A backend that cannot run a cell raises :class:`Unsupported` with the reason, which the sweep
reports instead of failing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class Unsupported(Exception):
    """This backend cannot run this cell here; the message says why."""

    status = "unsupported"


class NotRun(Unsupported):
    """The cell was left out of this run (e.g. over the run's time budget)."""

    status = "not run"


class StageFailed(Unsupported):
    """Making the cell's model failed (an export, optimize, precision or build stage raised)."""

    status = "failed"


@dataclass
class Timer:
    """A loaded model plus its input: ``timer()`` runs one batch and returns seconds."""

    backend: str
    device: str  # "cpu" or "cuda"
    detail: str  # e.g. the execution provider or TensorRT flavour
    call: Callable[[], float]
    release: Callable[[], None] = lambda: None

    def __call__(self) -> float:
        return self.call()

    def close(self) -> None:
        self.release()


def random_batch(batch: int, input_shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, *input_shape), dtype=np.float32)


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def error_line(e: BaseException | str) -> str:
    """A runtime's error as one readable line (ONNX Runtime's ``[ONNXRuntimeError] : N : KIND : text``
    as ``KIND: text``), at most 500 characters."""
    text = str(e).strip() or type(e).__name__
    m = re.search(r"\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*(\w+)\s*:\s*(.*)", text, re.S)
    if m:
        text = f"{m.group(1)}: {m.group(2)}"
    return " ".join(text.split())[:500]


def one_image(sample: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The first image of a feed; other inputs (a dynamic-grid model's grid) as they are."""
    return {k: v[:1] if k == "images" else v for k, v in sample.items()}
