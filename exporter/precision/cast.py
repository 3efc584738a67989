"""fp16 / bf16: cast a float32 graph, keeping numerically fragile ops in fp32 islands.

TensorRT builds strongly typed networks (docs/architecture.md, Precisions), so the precision is the graph's: a tensor is fp16
because the graph says so. The graph keeps float32 inputs and outputs (a Cast after the input and
before each output), and these ops stay float32 by default, with Casts around them:

- ``LayerNormalization``: the mean/variance of D values loses digits in fp16;
- ``Softmax`` (and ``LogSoftmax``): exp of the logits; for the ONNX ``Attention`` op (opset 23),
  whose softmax is internal, the attribute ``softmax_precision = 1`` (TensorProto FLOAT) asks for
  the softmax in float32 while its matmuls run in the cast precision (the spec: "the floating-point
  precision used in softmax computation"). TensorRT's ONNX parser refuses an Attention node that
  carries the attribute (onnx-tensorrt ``onnxOpCheckers.cpp``, the Attention checker: "Setting
  softmax precision is not supported"), so a graph converted for a TensorRT target
  (``target="tensorrt"``) leaves it out and TensorRT chooses the precision of its attention kernels;
- reductions (``ReduceMean`` etc.): sums of many values.

fp16 uses onnxconverter-common's ``convert_float_to_float16`` (op and node block lists, fp32 I/O).
That converter has no bfloat16 mode, so bf16 is written here on top of it: the fp16 conversion
decides where the casts go (same islands), then every fp16 type, Cast target and constant becomes
bf16, with constants rounded from the original fp32 values (ml_dtypes, round to nearest even), not
through fp16, whose narrower range would clip them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError, closest

FLOAT, FLOAT16, BFLOAT16 = 1, 10, 16
FP16_MAX = 65504.0
FP16_MIN_POSITIVE = 2.0**-24  # smallest fp16 subnormal

# Kept in fp32 unless --keep-fp32 says otherwise (the numerics rule above).
DEFAULT_KEEP_FP32 = (
    "LayerNormalization", "Softmax", "LogSoftmax",
    "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
    "ReduceMax", "ReduceMin", "ReduceProd",
)


@dataclass
class CastInfo:
    keep_ops: list[str]  # op types kept fp32 for numerics (configurable)
    keep_nodes: list[str]  # node names kept fp32 (configurable)
    runtime_ops: list[str]  # op types the converter keeps fp32 because runtimes lack fp16 kernels for them
    islands: int  # nodes computing in fp32
    attention_softmax_fp32: int  # Attention nodes given softmax_precision = FLOAT
    notes: list[str] = field(default_factory=list)


def resolve_keep_fp32(spec: str | list[str] | tuple[str, ...] | None, model: Any) -> tuple[list[str], list[str]]:
    """``--keep-fp32``: None -> the default op list; otherwise a comma-separated list (or a list) of
    op types and node names; ``default`` expands to the default ops, ``none`` (alone) keeps nothing."""
    import onnx

    if spec is None:
        return list(DEFAULT_KEEP_FP32), []
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if [i.lower() for i in items] == ["none"]:
        return [], []
    node_names = {n.name for n in model.graph.node if n.name}
    op_types: list[str] = []
    nodes: list[str] = []
    for item in items:
        if item.lower() == "default":
            op_types.extend(DEFAULT_KEEP_FP32)
        elif onnx.defs.has(item):
            op_types.append(item)
        elif item in node_names:
            nodes.append(item)
        else:
            near = closest(item, [s.name for s in onnx.defs.get_all_schemas()] + sorted(node_names))
            raise UserError(
                f"--keep-fp32: {item!r} is neither an ONNX op type nor a node name of this graph.",
                "Give op types (e.g. LayerNormalization,Softmax), node names, 'default' or 'none'"
                + (f"; did you mean {', '.join(near)}?" if near else "."),
            )
    return list(dict.fromkeys(op_types)), list(dict.fromkeys(nodes))


def cast_model(
    model: Any, to: str, keep_ops: list[str], keep_nodes: list[str], softmax_precision: bool = True
) -> tuple[Any, CastInfo]:
    """A copy of ``model`` (float32) computing in ``to`` (``fp16`` or ``bf16``) outside the islands.
    ``softmax_precision=False`` leaves the Attention nodes without the attribute (a TensorRT target)."""
    import onnx
    from onnxconverter_common import float16

    runtime_ops = [op for op in float16.DEFAULT_OP_BLOCK_LIST if op not in keep_ops]
    src = onnx.ModelProto()
    src.CopyFrom(model)
    unshared = _unshare_initializers(src, {*keep_ops, *runtime_ops}, set(keep_nodes))
    try:
        out = float16.convert_float_to_float16(
            src,
            min_positive_val=FP16_MIN_POSITIVE,
            max_finite_val=FP16_MAX,
            keep_io_types=True,
            op_block_list=[*keep_ops, *runtime_ops],
            node_block_list=keep_nodes,
        )
    except ValueError as e:  # e.g. "The model is already converted to float16"
        raise UserError(
            f"Cannot cast this graph to {to}: {e}", "Convert the fp32 graph written by `lookupvit export`."
        ) from None
    attention = 0
    if "Softmax" in keep_ops and softmax_precision:
        for node in out.graph.node:
            if node.op_type == "Attention" and node.name not in keep_nodes and "Attention" not in keep_ops:
                _set_int_attribute(node, "softmax_precision", FLOAT)
                attention += 1
    if to == "bf16":
        _fp16_to_bf16(out, model)
    elif to != "fp16":
        raise ValueError(f"cast_model: unknown target {to!r}")
    wanted = {*keep_ops, *runtime_ops}
    islands = sum(1 for n in out.graph.node if n.op_type in wanted or n.name in keep_nodes)
    present = {n.op_type for n in out.graph.node}
    info = CastInfo(
        keep_ops=keep_ops,
        keep_nodes=keep_nodes,
        runtime_ops=sorted(op for op in runtime_ops if op in present),
        islands=islands,
        attention_softmax_fp32=attention,
    )
    if unshared:
        info.notes.append(f"{unshared} initializer(s) shared by fp32 islands and cast ops were duplicated")
    return out, info


def _unshare_initializers(model: Any, blocked_ops: set[str], blocked_nodes: set[str]) -> int:
    """Give fp32-island nodes their own copy of an initializer they share with nodes being cast.

    onnxconverter-common keeps such a shared initializer in fp32 without a Cast for the cast
    consumer, which leaves an ill-typed graph (e.g. torch's exporter de-duplicates equal constants,
    so an all-zero LayerNorm bias and an all-zero Linear bias become one initializer). Duplicating
    it for the island nodes lets the converter cast the other copy. Returns the copies made.
    """
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    uses: dict[str, list[tuple[Any, int]]] = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in inits:
                uses.setdefault(name, []).append((node, i))
    names = set(inits) | {o for n in g.node for o in n.output}
    copies = 0
    for name, consumers in uses.items():
        kept = [(n, i) for n, i in consumers if n.op_type in blocked_ops or n.name in blocked_nodes]
        if not kept or len(kept) == len(consumers) or inits[name].data_type != FLOAT:
            continue
        new_name = f"{name}.fp32"
        while new_name in names:
            new_name += "_"
        names.add(new_name)
        copy = g.initializer.add()
        copy.CopyFrom(inits[name])
        copy.name = new_name
        for node, i in kept:
            node.input[i] = new_name
        copies += 1
    return copies


def _set_int_attribute(node: Any, name: str, value: int) -> None:
    import onnx

    for a in node.attribute:
        if a.name == name:
            a.CopyFrom(onnx.helper.make_attribute(name, value))
            return
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _bf16_tensor(array: Any, name: str) -> Any:
    """A BFLOAT16 TensorProto holding ``array`` rounded to nearest even."""
    import ml_dtypes
    import numpy as np
    import onnx

    t = onnx.TensorProto()
    t.name = name
    t.data_type = BFLOAT16
    t.dims.extend(array.shape)
    t.raw_data = np.asarray(array, dtype=np.float32).astype(ml_dtypes.bfloat16).tobytes()
    return t


def _fp16_to_bf16(model: Any, original: Any) -> None:
    """Turn the fp16 conversion of ``original`` into bf16 in place (see the module docstring)."""
    from onnx import numpy_helper

    originals = {t.name: t for t in original.graph.initializer}
    original_constants = {
        n.output[0]: a.t for n in original.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"
    }

    def retyped(t: Any, fp32: Any | None) -> Any:
        values = numpy_helper.to_array(fp32 if fp32 is not None and fp32.data_type == FLOAT else t)
        return _bf16_tensor(values, t.name)

    g = model.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == FLOAT16:
            g.initializer[i].CopyFrom(retyped(t, originals.get(t.name)))
    for node in g.node:
        for a in node.attribute:
            if a.name == "to" and node.op_type == "Cast" and a.i == FLOAT16:
                a.i = BFLOAT16
            elif a.type == a.TENSOR and a.t.data_type == FLOAT16:
                fp32 = original_constants.get(node.output[0]) if node.op_type == "Constant" else None
                a.t.CopyFrom(retyped(a.t, fp32))
    for v in [*g.input, *g.output, *g.value_info]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type == FLOAT16:
            v.type.tensor_type.elem_type = BFLOAT16
