"""PyTorch: the reference model as a Polygraphy runner (CPU or CUDA, :mod:`.runner`) and eager timing
(:mod:`.timer`). The runner is imported from its module, so that importing the backends (as a TensorRT
build child does) never imports torch."""

from .timer import torch_timer

__all__ = ["torch_timer"]
