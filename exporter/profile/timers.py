"""One timed call per backend: PyTorch eager, ONNX Runtime, TensorRT.

A :class:`Timer` holds a loaded model and a fixed input batch and runs one synchronous inference
per call, returning its wall time in seconds. Device work is synchronised before the clock stops
(``torch.cuda.synchronize``; ONNX Runtime's ``run`` returns host outputs; Polygraphy's
``TrtRunner`` synchronises its stream). A backend that cannot run a cell raises
:class:`Unsupported` with the reason, which the sweep reports instead of failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..precisions import TORCH_PRECISIONS

BACKENDS = ("torch", "ort", "trt")
BACKEND_NAMES = {"torch": "PyTorch", "ort": "ONNX Runtime", "trt": "TensorRT"}


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


def torch_timer(module: Any, batch: int, input_shape: tuple[int, ...], precision: str, grid: tuple[int, ...] | None) -> Timer:
    """PyTorch eager on CUDA when present, else the CPU; ``grid`` is passed per call to a LookupViT."""
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
        raise Unsupported(f"PyTorch {precision} on {device} failed: {type(e).__name__}: {_first_line(e)}") from None
    return Timer("torch", device, f"eager, {device}", call)


def ort_timer(path: str | Path, batch: int, input_shape: tuple[int, ...], threads: int, prefer_cuda: bool = True) -> Timer:
    """ONNX Runtime on its CUDA execution provider when installed, else the CPU provider."""
    from ..runners import ort_providers, ort_session

    providers = ort_providers(prefer_cuda)
    try:
        sess = ort_session(path, providers, threads)
    except Exception as e:
        raise Unsupported(f"ONNX Runtime cannot load {Path(path).name} on {providers[0]}: {_first_line(e)}") from None
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
        raise Unsupported(f"ONNX Runtime fails running {Path(path).name} at batch {batch}: {_first_line(e)}") from None
    return Timer("ort", device, providers[0], call)


def trt_timer(engine_path: str | Path, batch: int, input_shape: tuple[int, ...]) -> Timer:
    """A TensorRT engine through Polygraphy's runner; the time is the runner's own inference time."""
    from ..engine.trt import trt_runner
    from ..errors import UserError

    try:
        runner = trt_runner(engine_path)
        runner.activate()
    except UserError as e:
        raise Unsupported(e.message) from None
    except Exception as e:
        raise Unsupported(f"TensorRT cannot load {Path(engine_path).name}: {_first_line(e)}") from None
    meta = runner.get_input_metadata()
    name = next(iter(meta.keys()))
    feed: dict[str, Any] = {name: random_batch(batch, input_shape)}
    try:
        import torch

        if torch.cuda.is_available():  # device-resident input: time the engine, not the upload
            feed = {name: torch.from_numpy(feed[name]).cuda()}
    except ImportError:
        pass

    def call() -> float:
        runner.infer(feed, copy_outputs_to_host=False)
        return float(runner.last_inference_time())

    try:
        call()
    except Exception as e:
        runner.deactivate()
        raise Unsupported(f"TensorRT fails running {Path(engine_path).name} at batch {batch}: {_first_line(e)}") from None
    return Timer("trt", "cuda", Path(engine_path).name, call, runner.deactivate)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]
