"""The backends a latency sweep times, by name; each backend's timer lives in its folder of
:mod:`exporter.backends` (docs/architecture.md, The backend axis).
"""

from __future__ import annotations

from ..backends.base import NotRun, StageFailed, Timer, Unsupported, random_batch
from ..backends.onnxruntime.timer import ort_timer
from ..backends.tensorrt.timer import trt_timer
from ..backends.torch.timer import torch_timer

BACKENDS = ("torch", "ort", "trt")
BACKEND_NAMES = {"torch": "PyTorch", "ort": "ONNX Runtime", "trt": "TensorRT"}

__all__ = ["BACKENDS", "BACKEND_NAMES", "NotRun", "StageFailed", "Timer", "Unsupported", "ort_timer", "random_batch",
           "torch_timer", "trt_timer"]
