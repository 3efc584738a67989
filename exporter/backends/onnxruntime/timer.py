"""ONNX Runtime as a timed backend: its CUDA execution provider when installed, else the CPU."""

from __future__ import annotations

import time
from pathlib import Path

from ..base import Timer, Unsupported, first_line, random_batch
from .session import ort_providers, ort_session


def ort_timer(path: str | Path, batch: int, input_shape: tuple[int, ...], threads: int, prefer_cuda: bool = True) -> Timer:
    """ONNX Runtime on its CUDA execution provider when installed, else the CPU provider."""
    providers = ort_providers(prefer_cuda)
    try:
        sess = ort_session(path, providers, threads)
    except Exception as e:
        raise Unsupported(f"ONNX Runtime cannot load {Path(path).name} on {providers[0]}: {first_line(e)}") from None
    name = sess.get_inputs()[0].name
    feed = {name: random_batch(batch, input_shape)}
    device = "cuda" if providers[0] == "CUDAExecutionProvider" else "cpu"

    def call() -> float:
        t0 = time.perf_counter()
        sess.run(None, feed)
        return time.perf_counter() - t0

    try:
        call()
    except Exception as e:
        raise Unsupported(f"ONNX Runtime fails running {Path(path).name} at batch {batch}: {first_line(e)}") from None
    return Timer("ort", device, providers[0], call)
