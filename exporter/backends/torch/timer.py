"""PyTorch eager as a timed backend: CUDA when present, else the CPU; the grid chosen per call (the
PyTorch counterpart of a dynamic-grid model's grid input, docs/dynamic-grid.md)."""

from __future__ import annotations

import time
from typing import Any

from ...precisions import TORCH_PRECISIONS
from ..base import Timer, Unsupported, first_line, random_batch


def torch_timer(
    module: Any, batch: int, input_shape: tuple[int, ...], precision: str, grid: tuple[int, ...] | None,
    threads: int | None = None,
) -> Timer:
    """PyTorch eager on CUDA when present, else the CPU; ``grid`` is passed per call to a LookupViT;
    ``threads``: the intra-op threads every call runs with (set before the clock starts: PyTorch's
    thread count is per process, and cells timed in turn may use different counts)."""
    import torch

    if precision not in TORCH_PRECISIONS:
        raise Unsupported(
            f"PyTorch eager has no {precision} inference path for this model "
            f"(it runs {', '.join(TORCH_PRECISIONS)}); time {precision} with ONNX Runtime or TensorRT"
        )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    model = module.to(device=device, dtype=dtype).eval()
    x = torch.from_numpy(random_batch(batch, input_shape)).to(device=device, dtype=dtype)
    kwargs = {"grid": grid} if grid is not None else {}
    cuda = device == "cuda"

    def call() -> float:
        if threads and torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        with torch.inference_mode():
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            model(x, **kwargs)
            if cuda:
                torch.cuda.synchronize()
            return time.perf_counter() - t0

    try:
        call()  # fails here, not in the timed loop, when a kernel is missing for this dtype
    except Exception as e:
        raise Unsupported(f"PyTorch {precision} on {device} failed: {type(e).__name__}: {first_line(e)}") from None
    return Timer("torch", device, f"eager, {device}", call)
