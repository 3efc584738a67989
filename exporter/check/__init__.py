"""TensorRT readiness without a GPU: is a graph one TensorRT's ONNX parser takes, and which of its
attentions will run fused?

Rules come from the open-source ONNX parser of TensorRT (github.com/onnx/onnx-tensorrt, the revision
named in :mod:`exporter.check.operators`): its operator table and the static checks and import-time
checks of its source, each cited by the rule that uses it (:mod:`exporter.check.rules`). Fusion
estimates follow TensorRT's Fused Attention documentation (:mod:`exporter.check.fusion`).

``check_graph(path_or_model, profile=None) -> CheckReport`` is the entry point; ``lookupvit check``
prints it and ``lookupvit build`` refuses a graph with errors before TensorRT is imported.
"""

from .api import TARGETS, check_graph
from .findings import CheckFailed, CheckReport, Finding, FusionEstimate
from .fusion import fusion_eligibility

__all__ = ["TARGETS", "CheckFailed", "CheckReport", "Finding", "FusionEstimate", "check_graph", "fusion_eligibility"]
