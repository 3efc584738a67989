"""Graph-surgeon passes: rewrite LookupViT's cross-attention (and the compressed tokens'
self-attention) into fused patterns, each pass checked numerically with ONNX Runtime
(docs/architecture.md, How to add a pass). ``optimize_model`` is the stage's library entry point; ``lookupvit optimize`` the verb.

Modules: ``registry`` (the decorator, the default orders), ``canonical`` (opset, einsum,
constant folding, layout, LayerNorm, GELU), ``attention`` (gather, self-attention, scatter,
Attention to MatMul-Softmax-MatMul), ``cpu`` (merge-projections, skip-layernorm: the cpu target), ``check`` (the ONNX Runtime guard), ``optimize`` (the pipeline
and its report).
"""

from .optimize import OptimizeReport, PassRecord, optimize_model
from .registry import DEFAULT_ORDER, TARGETS, Pass, PassContext, PassResult, all_passes, get_pass, register_pass

__all__ = [
    "DEFAULT_ORDER", "TARGETS", "OptimizeReport", "Pass", "PassContext", "PassRecord", "PassResult", "all_passes",
    "get_pass", "optimize_model", "register_pass",
]
