"""ONNX Runtime: every session of the project (CPU, or the CUDA provider), its Polygraphy runner,
device-resident IO on CUDA, and timing."""

from .session import ort_providers, ort_runner, ort_session
from .timer import ort_timer

__all__ = ["ort_providers", "ort_runner", "ort_session", "ort_timer"]
