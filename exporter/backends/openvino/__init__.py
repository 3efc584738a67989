"""OpenVINO (the ``openvino`` extra) as a CPU backend reading the project's ONNX graphs: a Polygraphy
runner for ``validate`` and ``compare`` and a timer for ``profile`` (docs/architecture.md, The backend
axis). Imported only when asked for: the package is optional."""

from .runner import OpenVinoRunner, compile_onnx, openvino_missing
from .timer import ov_timer

__all__ = ["OpenVinoRunner", "compile_onnx", "openvino_missing", "ov_timer"]
