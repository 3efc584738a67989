"""The attention form TensorRT builds, per precision: what ``precision --target tensorrt`` writes.

Measured with the real builder (TensorRT-RTX 1.7.1.116, strongly typed network, ahead-of-time
builds for SM80 and SM89; the minimal reproducers are in ``tests/test_tensorrt_builds.py``):

1. An ONNX ``Attention`` node (opset 23) becomes TensorRT's ``IAttention`` layer, which is not
   decomposable unless the node says ``TRT_decomposable=1`` (onnx-tensorrt, ``AttentionHelpers.cpp``);
   the builder then needs a dedicated kernel. There is one in fp16 and bf16, none in fp32, and none
   for an Attention fed by Q/DQ pairs (int8, fp8): those are refused ("Attention operation was not
   supported by a dedicated kernel").
2. Two ``Attention`` nodes that read one tensor crash the TensorRT-RTX 1.7.1 builder (SIGSEGV in
   ``buildSerializedNetwork``). A LookupViT always has them: each layer's scatter takes the gather's
   query as its key, and its query is a second transpose of the gather's key (which the builder
   merges with the first). In fp16 the whole digits graph happened to build; in bf16, and in fp32
   with ``TRT_decomposable``, it crashed. With int8/fp8 Q/DQ pairs it still crashed after the
   tensors were separated, unless one path stayed unquantized.

So, for TensorRT:

- **fp16, bf16**: ``Attention`` stays (IAttention's fused kernels), and an Attention whose query or
  key reads a tensor that an earlier Attention reads (through layout ops: the builder merges equal
  transposes) reads it multiplied by 2, its ``scale`` divided by 4 for the two factors:
  ``(2Q)(2K)^T * s/4 = Q K^T * s``. Powers of two are exact in every float format (short of
  overflow, which a factor of 2 on a layer-normed projection does not reach), so the numbers do
  not change; a shared value input reads ``2V`` and the output is halved.
- **fp32, int8, fp8**: every ``Attention`` is written as ``MatMul(Q * scale, K^T) -> Softmax(-1) ->
  MatMul(V)`` in 4-D layout (the ``trt-mha`` form of :mod:`exporter.passes.attention`): what TensorRT
  decomposes an fp32 attention into anyway. For int8/fp8 the precision stage keeps these two batched
  MatMuls (the attention core) in float by default, as NVIDIA's Model Optimizer leaves an attention
  unquantized (``bench/bench_modelopt.py``: on lookupvit_digits grid 2, int8 top-1 98.89% with the core
  in float, 98.61% with it quantized); ``--keep-fp32 none`` quantizes them too, NVIDIA's Q/DQ
  placement for a fused int8/fp8 MHA. Both build.

ONNX Runtime runs every form (the check after the rewrite compares it with the graph before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

ATTENTION_DOMAINS = ("", "ai.onnx", None)
LAYOUT = ("Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten")
UNFUSED = ("fp32", "int8", "fp8")  # precisions written as MatMul-Softmax-MatMul for TensorRT
FACTOR = 2.0


@dataclass
class TensorRTForm:
    """What the rewrite did: how many Attention nodes were unfused, how many inputs separated."""

    precision: str
    unfused: int = 0
    separated: int = 0  # Attention inputs rescaled so that no two Attention nodes read one tensor
    notes: list[str] = field(default_factory=list)
    core_matmuls: list[str] = field(default_factory=list)  # the unfused attentions' two batched MatMuls each

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "unfused": self.unfused, "separated": self.separated,
                "notes": list(self.notes), "core_matmuls": len(self.core_matmuls)}


def _root(t: Any) -> Any:
    """The tensor ``t`` is a layout of: up through Transpose/Reshape/... to the first other producer."""
    seen = 0
    while t.inputs and t.inputs[0].op in LAYOUT and seen < 16:
        t = t.inputs[0].inputs[0]
        seen += 1
    return t


def _attention_nodes(graph: Any) -> list[Any]:
    return [n for n in graph.nodes if n.op == "Attention" and n.domain in ATTENTION_DOMAINS]


def _doubled(b: Any, t: Any, dtype: Any) -> Any:
    """``t * 2`` (a new Mul node of ``b``'s graph)."""
    two = b.const(np.array(FACTOR, dtype=t.dtype if t.dtype is not None else dtype), "two")
    return b.node("Mul", [t, two], dtype=t.dtype, shape=t.shape)


def separate_shared_inputs(graph: Any) -> int:
    """Rescale the inputs of each Attention that reads a tensor an earlier one reads (see the module
    docstring); returns how many inputs were rescaled. ``graph``: an onnx-graphsurgeon graph."""
    import onnx_graphsurgeon as gs

    from ..passes.gsutil import Builder

    b = Builder(graph, "trt_separate")
    seen: set[str] = set()
    count = 0
    for node in _attention_nodes(graph):
        q, k, v = node.inputs[:3]
        roots = [_root(t).name for t in (q, k, v)]
        shared_qk = roots[0] in seen or roots[1] in seen
        shared_v = roots[2] in seen
        seen.update(roots)
        if not (shared_qk or shared_v):
            continue
        dtype = q.dtype if q.dtype is not None else np.float32

        if shared_qk:
            d = q.shape[-1] if q.shape is not None else None
            scale = node.attrs.get("scale")
            if scale is None:  # Attention-23's default: 1/sqrt(head size)
                if not isinstance(d, int):
                    continue  # no scale to rewrite: leave the node as it is (check reports the sharing)
                scale = 1.0 / float(np.sqrt(d))
            node.inputs[0], node.inputs[1] = _doubled(b, q, dtype), _doubled(b, k, dtype)
            node.attrs["scale"] = float(scale) / (FACTOR * FACTOR)
            count += 2
        if shared_v:  # softmax(...) (2V) / 2
            node.inputs[2] = _doubled(b, v, dtype)
            out = node.outputs[0]
            inner = gs.Variable(b.name("attention_out"), dtype=out.dtype, shape=out.shape)
            node.outputs[0] = inner
            half = b.const(np.array(1.0 / FACTOR, dtype=out.dtype if out.dtype is not None else dtype), "half")
            b.node("Mul", [inner, half], out=out)
            count += 1
    return count


def _typed(model: Any) -> Any:
    """``model`` with inferred types on its tensors (the separating factors take their reader's type);
    the model itself where inference fails."""
    import onnx

    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # inference is a convenience here: the ONNX Runtime check after the rewrite decides
        return model


def tensorrt_form(model: Any, precision: str) -> tuple[Any, TensorRTForm]:
    """``model`` (an fp32 ModelProto) rewritten into the form TensorRT builds in ``precision`` (see the
    module docstring); the model itself when it has no Attention node. Metadata is the caller's."""
    import onnx_graphsurgeon as gs

    form = TensorRTForm(precision)
    if not any(n.op_type == "Attention" and n.domain in ("", "ai.onnx") for n in model.graph.node):
        return model, form
    graph = gs.import_onnx(_typed(model))
    if precision in UNFUSED:
        from ..passes.attention import unfuse_attention
        from ..passes.registry import PassContext

        before = {n.name for n in graph.nodes}
        result = unfuse_attention(graph, PassContext(target="trt-mha"))
        form.unfused = result.matches
        form.core_matmuls = sorted(n.name for n in graph.nodes if n.op == "MatMul" and n.name not in before)
        left = result.details.get("left") if isinstance(result.details, dict) else None
        if left:
            form.notes.append("Attention left as it is (TensorRT may refuse it): "
                              + ", ".join(f"{why} ({n})" for why, n in left.items()))
        if form.unfused:
            form.notes.append(f"{form.unfused} Attention node(s) written as MatMul-Softmax-MatMul: TensorRT's "
                              f"IAttention has no {precision} kernel"
                              + (" for Q/DQ inputs (NVIDIA's MHA Q/DQ placement instead)" if precision != "fp32" else ""))
    else:
        form.separated = separate_shared_inputs(graph)
        if form.separated:
            form.notes.append(f"{form.separated} Attention input(s) read a tensor another Attention reads: each "
                              "read as x*2 with the scale divided to match (exact), as two Attention nodes reading "
                              "one tensor crash the TensorRT-RTX 1.7.1 builder")
    graph.cleanup().toposort()
    out = gs.export_onnx(graph)
    out.ir_version = model.ir_version
    del out.metadata_props[:]
    out.metadata_props.extend(model.metadata_props)
    return out, form
