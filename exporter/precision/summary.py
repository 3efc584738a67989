"""What precision a graph computes in: op counts, the element type each compute op runs at, and the
Q/DQ pairs (count, placement, zero points, per-channel weight scales).

Rules relied upon (ONNX operator specs):
- ``DequantizeLinear(x, x_scale, x_zero_point, axis)`` computes ``(x - zero_point) * scale``; a 1-D
  scale of size ``shape[axis]`` is per-axis (per-channel), a scalar scale is per-tensor.
- A compute op "runs at" the element type of its first floating input; when that input comes from a
  ``DequantizeLinear`` the op runs at the quantized type (int8, fp8), which is how TensorRT reads a
  Q/DQ pair in front of a MatMul/Gemm/Conv in explicit quantization mode.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

# ONNX element types by number (onnx.TensorProto), named as the precisions are.
DTYPE_NAMES = {
    1: "fp32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "fp16", 11: "fp64",
    16: "bf16", 17: "fp8e4m3fn", 18: "fp8e4m3fnuz", 19: "fp8e5m2", 20: "fp8e5m2fnuz", 21: "uint4", 22: "int4",
}
FLOAT_TYPES = {1, 10, 11, 16}
# Ops whose precision decides speed and accuracy; reported per element type.
COMPUTE_OPS = (
    "Conv", "MatMul", "Gemm", "Attention", "LayerNormalization", "Softmax", "Gelu", "ReduceMean", "ReduceSum",
    "ReduceMax", "Resize", "Add", "Mul",
)
# Ops where TensorRT fuses a Q/DQ pair on the inputs into a quantized kernel.
QUANTIZABLE_OPS = ("MatMul", "Gemm", "Conv", "Attention")


def dtype_name(elem_type: int) -> str:
    return DTYPE_NAMES.get(elem_type, f"type{elem_type}")


@dataclass
class WeightQuant:
    """One weight input of a MatMul/Gemm/Conv and how it is quantized."""

    node: str
    op: str
    weight: str  # the float weight's name as it was before quantization (the DQ's input)
    dtype: str  # quantized type, e.g. int8
    per_channel: bool
    channels: int  # number of scales


@dataclass
class GraphSummary:
    nodes: int
    ops: dict[str, int]
    compute: dict[str, dict[str, int]]  # op type -> {element type it runs at -> count}
    initializers: dict[str, int]  # element type -> count
    quantize_linear: int = 0
    dequantize_linear: int = 0
    zero_points: list[float] = field(default_factory=list)  # distinct zero-point values
    quantized_inputs: dict[str, int] = field(default_factory=dict)  # "MatMul.weight"/"MatMul.activation" -> count
    weights_total: int = 0  # constant weight inputs of MatMul/Gemm/Conv
    weights_quantized: list[WeightQuant] = field(default_factory=list)

    @property
    def all_weights_quantized(self) -> bool:
        return self.weights_total > 0 and len(self.weights_quantized) == self.weights_total

    def to_dict(self, weights: bool = False) -> dict[str, Any]:
        d = asdict(self)
        d["weights_quantized"] = len(self.weights_quantized)
        d["weights_per_channel"] = sum(w.per_channel for w in self.weights_quantized)
        if weights:
            d["weights"] = [asdict(w) for w in self.weights_quantized]
        return d


def _types(model: Any) -> dict[str, int]:
    """Element type of every named tensor (after shape inference where it succeeds)."""
    import onnx

    g = model.graph
    try:
        g = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:  # too large for in-memory inference, or an op it does not know: use what is declared
        pass
    types: dict[str, int] = {}
    for v in [*g.input, *g.output, *g.value_info]:
        if v.type.HasField("tensor_type"):
            types[v.name] = v.type.tensor_type.elem_type
    for t in g.initializer:
        types[t.name] = t.data_type
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    types[n.output[0]] = a.t.data_type
        elif n.op_type == "Cast":
            to = next((a.i for a in n.attribute if a.name == "to"), None)
            if to is not None:
                types.setdefault(n.output[0], to)
    return types


def summarize(model: Any) -> GraphSummary:
    """Summarise ``model`` (an ``onnx.ModelProto``)."""
    from onnx import numpy_helper

    g = model.graph
    types = _types(model)
    inits = {t.name: t for t in g.initializer}
    constants = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    producer = {o: n for n in g.node for o in n.output}

    def const_array(name: str):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        if name in constants:
            return numpy_helper.to_array(next(a.t for a in constants[name].attribute if a.name == "value"))
        return None

    def is_constant(name: str) -> bool:
        seen = 0
        while name in producer and producer[name].op_type in ("Cast", "Transpose", "Reshape", "Identity") and seen < 4:
            name, seen = producer[name].input[0], seen + 1  # a weight behind a cast or layout change
        return name in inits or name in constants

    ops = Counter(n.op_type for n in g.node)
    compute: dict[str, Counter] = {}
    zero_points: set[float] = set()
    quantized_inputs: Counter = Counter()
    weights: list[WeightQuant] = []
    weights_total = 0
    for n in g.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) >= 3 and n.input[2]:
            zp = const_array(n.input[2])
            if zp is not None:
                zero_points.update(float(v) for v in zp.astype("float32").ravel())
        if n.op_type not in COMPUTE_OPS:
            continue
        first = next((i for i in n.input if i and types.get(i) in FLOAT_TYPES), n.input[0] if n.input else "")
        src = producer.get(first)
        if src is not None and src.op_type == "DequantizeLinear":
            runs_at = dtype_name(types.get(src.input[0], 0))
        else:
            runs_at = dtype_name(types.get(first, 0))
        compute.setdefault(n.op_type, Counter())[runs_at] += 1
        if n.op_type not in QUANTIZABLE_OPS:
            continue
        data_inputs = list(n.input[:3]) if n.op_type == "Attention" else list(n.input[:2])
        for pos, name in enumerate(data_inputs):
            src_node = producer.get(name)
            dq = src_node if src_node is not None and src_node.op_type == "DequantizeLinear" else None
            quantized = dq is not None
            base = dq.input[0] if dq is not None else name
            weight = n.op_type != "Attention" and pos == 1 and is_constant(base)
            if weight:
                weights_total += 1
            if not quantized:
                continue
            quantized_inputs[f"{n.op_type}.{'weight' if weight else 'activation'}"] += 1
            if weight and dq is not None:
                scale = const_array(dq.input[1])
                channels = int(scale.size) if scale is not None else 1
                weights.append(
                    WeightQuant(n.name, n.op_type, base, dtype_name(types.get(base, 0)), channels > 1, channels)
                )
    init_types = Counter(dtype_name(t.data_type) for t in g.initializer)
    return GraphSummary(
        nodes=len(g.node),
        ops=dict(sorted(ops.items())),
        compute={k: dict(v) for k, v in sorted(compute.items())},
        initializers=dict(sorted(init_types.items())),
        quantize_linear=ops.get("QuantizeLinear", 0),
        dequantize_linear=ops.get("DequantizeLinear", 0),
        zero_points=sorted(zero_points),
        quantized_inputs=dict(sorted(quantized_inputs.items())),
        weights_total=weights_total,
        weights_quantized=weights,
    )
