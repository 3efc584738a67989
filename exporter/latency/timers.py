"""The backends a latency sweep times, by name; each backend's timer lives in its folder of
:mod:`exporter.backends` (docs/architecture.md, The backend axis).
"""

from __future__ import annotations

from ..backends.base import NotRun, StageFailed, Timer, Unsupported, random_batch
from ..backends.onnxruntime.timer import ort_timer
from ..backends.tensorrt.timer import trt_timer
from ..backends.torch.timer import torch_timer

BACKENDS = ("torch", "ort", "trt", "openvino")
BACKEND_NAMES = {"torch": "PyTorch", "ort": "ONNX Runtime", "trt": "TensorRT", "openvino": "OpenVINO"}


def ov_timer(path, batch: int, input_shape: tuple[int, ...], threads: int, hint: str = "latency",
             grid: tuple[int, ...] | None = None) -> Timer:
    """OpenVINO's timer (exporter.backends.openvino), imported on use: the package is an optional extra."""
    from ..backends.openvino.timer import ov_timer as timer

    return timer(path, batch, input_shape, threads, hint, grid)


__all__ = ["BACKENDS", "BACKEND_NAMES", "NotRun", "StageFailed", "Timer", "Unsupported", "ort_timer", "ov_timer", "random_batch",
           "torch_timer", "trt_timer"]
