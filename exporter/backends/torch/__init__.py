"""PyTorch: the reference model as a Polygraphy runner (CPU or CUDA) and eager timing."""

from .runner import TorchRunner
from .timer import torch_timer

__all__ = ["TorchRunner", "torch_timer"]
