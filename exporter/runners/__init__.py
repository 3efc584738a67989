"""Backends as Polygraphy runners: the project's own PyTorch runner (CPU or CUDA) and ONNX Runtime.

Polygraphy's ``PytRunner`` moves every input to CUDA, so it cannot run on a CPU-only machine;
:class:`TorchRunner` implements the same ``BaseRunner`` interface on either device.
"""

from .onnxrt import ort_providers, ort_runner, ort_session
from .polygraphy_log import quiet_polygraphy
from .torch_runner import TorchRunner

quiet_polygraphy()

__all__ = ["TorchRunner", "ort_providers", "ort_runner", "ort_session", "quiet_polygraphy"]
