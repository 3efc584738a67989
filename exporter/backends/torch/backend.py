"""PyTorch eager as a registered backend (exporter/backends/registry.py): the reference of every
comparison, and a timed backend over the PyTorch module itself."""

from __future__ import annotations

from typing import Any

from ..base import Timer
from ..registry import Backend, Timing, register


@register
class TorchBackend(Backend):
    key = "torch"
    name = "torch"
    title = "PyTorch"
    aliases = ("pytorch",)
    runs = "module"
    graphs_for = "onnxruntime"
    cpu_threads = True

    def describe(self) -> str:
        from ...versions import package_version

        return f"torch {package_version('torch')}"

    def timer(self, model: Any, call: Timing) -> Timer:
        from .timer import torch_timer

        return torch_timer(model, call.batch, call.shape, call.precision, call.grid, call.threads)
