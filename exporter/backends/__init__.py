"""The backends, one folder per framework as Polygraphy's ``backend/<framework>/``
(docs/architecture.md, The backend axis): what the stages need from PyTorch, ONNX Runtime and
TensorRT, a runner (for ``validate`` and ``compare``) and a timer (for ``profile``) side by side.

Polygraphy's ``PytRunner`` moves every input to CUDA, so it cannot run on a CPU-only machine; the
project's :class:`~.torch.runner.TorchRunner` implements the same ``BaseRunner`` interface on either device.
Polygraphy's logging is configured once, here (:mod:`.polygraphy_log`).
"""

from .onnxruntime import ort_providers, ort_runner, ort_session
from .polygraphy_log import quiet_polygraphy

quiet_polygraphy()

__all__ = ["ort_providers", "ort_runner", "ort_session", "quiet_polygraphy"]
