"""ONNX Runtime as a timed backend: its CUDA execution provider when installed, else the CPU.

On the CUDA provider the timed call is :class:`~exporter.backends.onnxruntime.cuda.CudaIoSession`'s
``run()``: inputs and outputs stay on the GPU (IO binding) and a CUDA graph replays the run where the
model allows one, so the time is the model's, not the PCIe copies' (ONNX Runtime's CUDA execution
provider documentation, "IOBinding" and "Using CUDA Graphs"). On the CPU it is ``session.run``.

A dynamic-grid model (docs/dynamic-grid.md) is timed at one grid per timer: the grid input
of that shape is part of the fixed feed, next to the images (one session per file and grid).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import UserError
from ..base import Timer, Unsupported, first_line, random_batch
from .session import ort_providers, ort_session

if TYPE_CHECKING:  # a type only: importing exporter.models imports torch, which a build child never needs
    from ...models.config import Grid


def ort_timer(
    path: str | Path, batch: int, input_shape: tuple[int, ...], threads: int, prefer_cuda: bool = True,
    grid: Grid | None = None,
) -> Timer:
    """ONNX Runtime on its CUDA execution provider when installed, else the CPU provider; ``grid``:
    the grid a dynamic-grid model runs at (ignored by a model with its grid fixed)."""
    from ...export.grid_input import grid_feed

    try:
        extra = grid_feed(path, grid) if grid is not None else {}
    except UserError as e:
        raise Unsupported(e.message) from None
    providers = ort_providers(prefer_cuda)
    if providers[0] == "CUDAExecutionProvider":
        return _cuda_timer(path, batch, input_shape, extra)
    try:
        sess = ort_session(path, providers, threads)
    except Exception as e:
        raise Unsupported(f"ONNX Runtime cannot load {Path(path).name} on {providers[0]}: {first_line(e)}") from None
    name = sess.get_inputs()[0].name
    feed = {name: random_batch(batch, input_shape), **extra}

    def call() -> float:
        t0 = time.perf_counter()
        sess.run(None, feed)
        return time.perf_counter() - t0

    try:
        call()
    except Exception as e:
        raise Unsupported(f"ONNX Runtime fails running {Path(path).name} at batch {batch}: {first_line(e)}") from None
    return Timer("ort", "cpu", providers[0] + _grid_note(extra), call)


def _grid_note(extra: dict[str, Any]) -> str:
    """``, grid input 3x3`` for a dynamic-grid model's cell."""
    return "".join(f", {k} input {'x'.join(map(str, v.shape))}" for k, v in extra.items())


def _cuda_timer(path: str | Path, batch: int, input_shape: tuple[int, ...], extra: dict[str, Any]) -> Timer:
    from ...onnx_io import load_onnx
    from .cuda import CudaIoSession

    name = load_onnx(path, weights=False).graph.input[0].name
    try:
        session = CudaIoSession(path, {name: random_batch(batch, input_shape), **extra})  # runs once: capture, warm
    except Exception as e:
        raise Unsupported(f"ONNX Runtime (CUDA) cannot run {Path(path).name} at batch {batch}: {first_line(e)}") from None

    def call() -> float:
        t0 = time.perf_counter()
        session.run()  # synchronises the outputs before returning
        return time.perf_counter() - t0

    detail = "CUDAExecutionProvider, IO binding" + (", CUDA graph" if session.cuda_graph else "")
    return Timer("ort", "cuda", detail + _grid_note(extra) + (f" ({session.note})" if session.note else ""), call)
