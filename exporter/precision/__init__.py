"""Precision stage: an fp32 ONNX graph -> fp16 / bf16 (casts with fp32 islands) or int8 / fp8
(calibrated Q/DQ pairs); the accuracy comparison across precisions is :mod:`exporter.compare`.

TensorRT builds strongly typed networks (docs/architecture.md, Precisions), so the precision is written into the graph and
the same file feeds ONNX Runtime and TensorRT.
"""

from ..precisions import PRECISIONS
from .cast import DEFAULT_KEEP_FP32
from .convert import PrecisionReport, convert_precision
from .quantize import CALIB_METHODS, DEFAULT_CALIB_SIZE
from .summary import GraphSummary, summarize

__all__ = [
    "CALIB_METHODS", "DEFAULT_CALIB_SIZE", "DEFAULT_KEEP_FP32", "PRECISIONS", "GraphSummary", "PrecisionReport",
    "convert_precision", "summarize",
]
