"""The rules, one function per operator rule, registered by decorator.

Every rule cites where TensorRT states it, in the onnx-tensorrt revision named in
:mod:`exporter.check.operators`: a static check in ``onnxOpCheckers.cpp`` (``DEFINE_OP_CHECKER(Op)``,
run over the whole graph before import), a check made while importing the node in
``onnxOpImporters.cpp`` (``DEFINE_BUILTIN_OP_IMPORTER(Op)``) or ``AttentionHelpers.cpp``, or a row
of ``docs/operators.md``. Graph-wide rules (opset range, operator coverage, element types, the GPU's
types) run once; node rules run for each node of their operator in the default ONNX domain.

The checks are static: what the parser decides from attributes, constant inputs and inferred shapes.
A shape that is symbolic here is checked by TensorRT when the engine is built, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import onnx

from ..profiles import Profile, gpu_has_precision
from .findings import Finding, Severity
from .graph import GraphView, attr, has_attr, node_label
from .operators import (
    ATTENTION_HELPERS,
    CHECKERS,
    IMPORTERS,
    MAX_OPSET,
    MIN_OPSET,
    OPERATORS_DOC,
    QUANTIZED,
    SUPPORTED,
    TRT_TYPE,
    type_name,
)

CHANGELOG_10_7 = "onnx-tensorrt docs/Changelog.md, 10.7 GA: plugins are preferred over local functions"
RELEASE_11_5 = "onnx-tensorrt release/11.5-GA notes: 'Added support for ONNX opset 25'"
MAX_OPSET_11 = 25
BUILDER_MEASURED = ("measured with the TensorRT-RTX 1.7.1.116 builder, strongly typed, SM80/SM89 "
                    "(exporter/precision/tensorrt_form.py; reproducers in tests/test_tensorrt_builds.py)")
LAYOUT_OR_CAST = frozenset({"Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten", "Cast"})
FUSED_ATTENTION_DOC = "TensorRT developer guide, Working with Transformers: Fused Attention (IAttention)"
DEFAULT_DOMAINS = ("", "ai.onnx")
DATA_MOVEMENT = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Concat", "Slice",
                           "Gather", "Expand", "Split", "Tile"})


@dataclass(frozen=True)
class CheckContext:
    """What the rules may need besides the graph: the deployment profile (for the GPU's types)."""

    profile: Profile | None = None


NodeRule = Callable[[onnx.NodeProto, GraphView, CheckContext], Iterator[Finding]]
GraphRule = Callable[[GraphView, CheckContext], Iterator[Finding]]
NODE_RULES: dict[str, list[NodeRule]] = {}
GRAPH_RULES: list[GraphRule] = []


def node_rule(*ops: str) -> Callable[[NodeRule], NodeRule]:
    """Register ``fn`` as a rule for nodes of ``ops`` (default ONNX domain)."""

    def deco(fn: NodeRule) -> NodeRule:
        for op in ops:
            NODE_RULES.setdefault(op, []).append(fn)
        return fn

    return deco


def graph_rule(fn: GraphRule) -> GraphRule:
    GRAPH_RULES.append(fn)
    return fn


def found(
    node: onnx.NodeProto | None, rule: str, message: str, source: str, fix: str, severity: Severity = "error"
) -> Finding:
    if node is None:
        return Finding("<graph>", "-", rule, severity, message, source, fix)
    return Finding(node_label(node), node.op_type, rule, severity, message, source, fix)


def _input(node: onnx.NodeProto, i: int) -> str:
    """The name of input ``i``, '' when absent or omitted."""
    return node.input[i] if i < len(node.input) else ""


# --- graph-wide rules -----------------------------------------------------------------------------


@graph_rule
def opset_range(g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    if not MIN_OPSET <= g.opset <= MAX_OPSET_11:
        yield found(
            None, "opset", f"The graph imports ONNX opset {g.opset}; TensorRT's parser takes opsets "
            f"{MIN_OPSET} to {MAX_OPSET} (10.15) or {MAX_OPSET_11} (11.5 and newer).",
            OPERATORS_DOC + " (opening paragraph); " + RELEASE_11_5,
            "Re-export with `lookupvit export --opset 23` (or convert with onnx.version_converter).",
        )
    elif g.opset > MAX_OPSET:
        yield found(
            None, "opset", f"The graph imports ONNX opset {g.opset}, which TensorRT's parser reads from 11.5 on; "
            f"10.x reads up to opset {MAX_OPSET}.", RELEASE_11_5,
            "Build with TensorRT 11.5 or newer, or re-export with `lookupvit export --opset 23`.", severity="warning",
        )


@graph_rule
def operator_coverage(g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    for node in g.model.graph.node:
        if node.domain not in DEFAULT_DOMAINS and (node.domain, node.op_type) in g.functions:
            yield found(
                node, "plugin", f"{node.domain}::{node.op_type} is a model-local function: TensorRT's parser uses a "
                "plugin registered under that name when one is loaded, else imports the function's body (its "
                "nodes are checked as the graph's are).",
                CHANGELOG_10_7 + "; " + CHECKERS + ": DEFINE_OP_CHECKER(LocalFunctionImporter)",
                "Nothing, if the function body is what you want built; to build the plugin instead, load its "
                "library before building.",
                severity="warning",
            )
        elif node.domain not in DEFAULT_DOMAINS:
            yield found(
                node, "plugin", f"{node.domain}::{node.op_type} is not an ONNX operator: TensorRT's parser "
                "imports it only as a plugin of that name (FallbackPluginImporter), which this check cannot see.",
                CHECKERS + ": DEFINE_OP_CHECKER(FallbackPluginImporter)",
                "Load the plugin library when building (it must register a creator with this name, version "
                "and namespace), or rewrite the node with standard ONNX operators.",
                severity="warning",
            )
        elif node.op_type not in SUPPORTED:
            yield found(
                node, "op-unsupported", f"TensorRT's parser has no importer for {node.op_type}; it would look "
                f"for a plugin named {node.op_type} and refuse the graph without one.",
                OPERATORS_DOC + f" (row {node.op_type})" if node.op_type else OPERATORS_DOC,
                "Rewrite it with supported operators (`lookupvit optimize` canonicalises the forms it knows) "
                "or provide a TensorRT plugin of that name.",
            )


def _data_input(node: onnx.NodeProto) -> str:
    """The input whose type the operator table's 'Supported Types' column describes."""
    if node.op_type == "Where":
        return _input(node, 1)
    if node.op_type in ("Shape", "Size", "ConstantOfShape", "Constant", "Range", "EyeLike", "RandomUniform",
                        "RandomNormal", "If", "Loop", "Scan"):
        return ""
    return _input(node, 0)


@graph_rule
def element_types(g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    """Tensors of a type TensorRT lacks, and ops reading a type their table row does not list."""
    for node in g.model.graph.node:
        if node.domain not in DEFAULT_DOMAINS:
            continue
        for name in [*node.input, *node.output]:
            t = g.elem_type(name) if name else None
            if t is not None and t not in TRT_TYPE:
                yield found(
                    node, "type-unsupported", f"Tensor {name!r} is {type_name(t)}, a type TensorRT does not have.",
                    OPERATORS_DOC + " (supported ONNX data types)",
                    "Cast it to a supported type (FLOAT, FLOAT16, BFLOAT16, INT32, INT64, INT8, UINT8, BOOL, "
                    "FLOAT8E4M3FN) or quantize through QuantizeLinear/DequantizeLinear.",
                )
                break
        allowed = SUPPORTED.get(node.op_type)
        data = _data_input(node)
        t = g.elem_type(data) if data else None
        if allowed is None or t is None or t not in TRT_TYPE:
            continue
        name = TRT_TYPE[t]
        if name not in allowed and name in QUANTIZED and node.op_type in DATA_MOVEMENT:
            yield found(
                node, "op-type", f"{node.op_type} reads {type_name(t)} ({data!r}); TensorRT's table lists "
                f"{', '.join(sorted(allowed))} for it, but the builder may move the quantization across a "
                "data-movement op.", OPERATORS_DOC + f" (row {node.op_type}, Supported Types)",
                "Put the DequantizeLinear before this op to be sure, or confirm with a build on a GPU.",
                severity="warning",
            )
        elif name not in allowed:
            yield found(
                node, "op-type", f"{node.op_type} reads {type_name(t)} ({data!r}); TensorRT's table lists "
                f"{', '.join(sorted(allowed))} for it.",
                OPERATORS_DOC + f" (row {node.op_type}, Supported Types)",
                "Quantized types (INT8, FP8) only enter through DequantizeLinear: dequantize before this op, "
                "or cast the input to a listed type." if name in QUANTIZED else
                "Cast the input to a listed type before this op.",
            )


@graph_rule
def gpu_types(g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    """bf16 needs sm_80 or newer, fp8 sm_89 or newer (exporter.profiles.gpu_has_precision)."""
    prof = ctx.profile
    if prof is None or prof.compute_capability is None:
        return
    wants = {onnx.TensorProto.BFLOAT16: "bf16", onnx.TensorProto.FLOAT8E4M3FN: "fp8"}
    for t, precision in wants.items():
        if gpu_has_precision(prof.compute_capability, precision):
            continue
        nodes = [n for n in g.model.graph.node if any(g.elem_type(x) == t for x in [*n.input, *n.output] if x)]
        if nodes:
            names = ", ".join(node_label(n) for n in nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
            yield found(
                nodes[0], f"gpu-{precision}", f"{len(nodes)} node(s) use {type_name(t)} ({names}), which "
                f"{prof.gpu or prof.name} ({prof.sm}) does not run: {precision} needs "
                f"{'sm_80' if precision == 'bf16' else 'sm_89'} or newer.",
                "TensorRT support matrix (hardware and precision); profiles/" + prof.name + ".toml",
                f"Build a precision this GPU has ({', '.join(prof.precisions)}), or use a profile for a newer GPU.",
            )


# --- node rules -----------------------------------------------------------------------------------


@node_rule("Attention")
def attention_outputs(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    if len(node.output) != 1:
        yield found(
            node, "attention.outputs", f"Attention declares {len(node.output)} outputs; TensorRT takes Attention "
            "nodes with exactly one (present_key, present_value and qk_matmul_output are unsupported).",
            IMPORTERS + ": DEFINE_BUILTIN_OP_IMPORTER(Attention), 'only supports Attention nodes with one output'",
            "Keep only the output Y (remove the other outputs from the node).",
        )


@node_rule("Attention")
def attention_kv_cache(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    for i, what in ((4, "past_key"), (5, "past_value")):
        if _input(node, i):
            yield found(
                node, "attention.past-kv", f"Attention sets {what}, which TensorRT does not support.",
                IMPORTERS + f": DEFINE_BUILTIN_OP_IMPORTER(Attention), 'Setting {what} ... is not supported'",
                "Export without a KV cache (a vision transformer has none): leave inputs 4 and 5 empty.",
            )
    if _input(node, 6):
        yield found(
            node, "attention.nonpad-kv", "Attention sets nonpad_kv_seqlen, which TensorRT does not support.",
            OPERATORS_DOC + " (row Attention)", "Leave input 6 empty; express padding with attn_mask instead.",
        )


@node_rule("Attention")
def attention_attributes(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    if float(attr(node, "softcap", 0.0)) != 0.0:
        yield found(
            node, "attention.softcap", "Attention sets softcap, which TensorRT's Attention does not support.",
            CHECKERS + ": DEFINE_OP_CHECKER(Attention), 'Setting softcap is not supported'",
            "Remove the softcap attribute (or set it to 0).",
        )
    if has_attr(node, "softmax_precision"):
        yield found(
            node, "attention.softmax-precision", "Attention sets softmax_precision; TensorRT's parser refuses "
            "any Attention node carrying that attribute.",
            CHECKERS + ": DEFINE_OP_CHECKER(Attention), 'Setting softmax precision is not supported'",
            "Convert for TensorRT: `lookupvit precision --to fp16|bf16 --target tensorrt` leaves the attribute "
            "out (or delete it from the node).",
        )


@node_rule("Attention")
def attention_kernel(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    """IAttention is not decomposable unless the node sets ``TRT_decomposable=1``; the builder then needs
    a dedicated kernel, which exists in fp16 and bf16 only (measured: fp32 refused; Q/DQ-fed int8/fp8
    refused, and in a LookupViT graph a builder crash)."""
    from .fusion import compute_precision

    precision = compute_precision(g, _input(node, 0))
    if precision in ("int8", "fp8"):
        yield found(
            node, "attention.quantized", f"Attention reads {precision} Q/DQ inputs: TensorRT has no dedicated kernel "
            "for a quantized Attention node, so the builder refuses it (a LookupViT graph of them crashed the "
            "TensorRT-RTX 1.7.1 builder).", FUSED_ATTENTION_DOC + "; " + BUILDER_MEASURED,
            f"Convert for TensorRT: `lookupvit precision --to {precision} --target tensorrt` writes each attention "
            "as MatMul-Softmax-MatMul with Q/DQ on both MatMuls (NVIDIA's MHA placement).",
        )
    elif precision == "fp32" and int(attr(node, "TRT_decomposable", 0) or 0) != 1:
        yield found(
            node, "attention.fp32", "Attention computes in fp32: TensorRT's IAttention has no fp32 kernel and this "
            "node is not marked TRT_decomposable, so the builder refuses it ('Attention operation was not supported "
            "by a dedicated kernel').", FUSED_ATTENTION_DOC + "; " + BUILDER_MEASURED,
            "Convert for TensorRT: `lookupvit precision --to fp32 --target tensorrt` writes it as "
            "MatMul-Softmax-MatMul (what TensorRT runs an fp32 attention as); or set TRT_decomposable=1 on the node.",
        )


def layout_root(g: GraphView, tensor: str) -> str:
    """The tensor ``tensor`` is a layout or cast of (through Transpose, Reshape, ..., Cast): the
    builder merges equal layouts of one tensor, so two readers of them read one tensor."""
    for _ in range(16):
        node = g.producers.get(tensor)
        if node is None or node.op_type not in LAYOUT_OR_CAST or not node.input:
            break
        tensor = node.input[0]
    return tensor


@graph_rule
def attention_shared_inputs(g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    """Two Attention nodes that read one tensor crash the TensorRT-RTX 1.7.1 builder (SIGSEGV)."""
    readers: dict[str, str] = {}
    for node in g.model.graph.node:
        if node.op_type != "Attention" or node.domain not in DEFAULT_DOMAINS:
            continue
        label = node_label(node)
        for role, name in zip(("query", "key", "value"), node.input[:3]):
            root = layout_root(g, name)
            first = readers.setdefault(root, label)
            if first != label:
                yield found(
                    node, "attention.shared-input", f"Attention's {role} reads {root!r}, which Attention {first} also "
                    "reads (directly or through layouts the builder merges): two Attention nodes reading one tensor "
                    "crash the TensorRT-RTX 1.7.1 builder (SIGSEGV while building; seen in bf16, int8, fp8 and "
                    "decomposable fp32 LookupViT graphs; an fp16 one happened to build).", BUILDER_MEASURED,
                    "Convert for TensorRT: `lookupvit precision --target tensorrt` makes the second reader read "
                    "the tensor times 2 with its scale adjusted (exact).",
                )


@node_rule("Attention")
def attention_shapes(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    q, k, v = _input(node, 0), _input(node, 1), _input(node, 2)
    rq, rk, rv = g.rank(q), g.rank(k), g.rank(v)
    if None not in (rq, rk, rv) and not rq == rk == rv:
        yield found(
            node, "attention.rank", f"Q, K and V have ranks {rq}, {rk}, {rv}; TensorRT needs them equal.",
            IMPORTERS + ": DEFINE_BUILTIN_OP_IMPORTER(Attention), 'Q, K, and V inputs must have the same number "
            "of dimensions'",
            "Write Q, K and V in the same layout: 4-D [B, heads, S, head_size] (or all 3-D with q_num_heads "
            "and kv_num_heads).",
        )
        return
    if rq not in (None, 3, 4):
        yield found(
            node, "attention.rank", f"Q has rank {rq}; TensorRT's Attention takes 4-D [B, heads, S, head_size] "
            "(or 3-D [B, S, hidden], reshaped by the parser).",
            OPERATORS_DOC + " (row Attention: 'Q, K, V and attn_mask must be 4D')",
            "Reshape Q, K and V to [B, heads, S, head_size].",
        )
        return
    if rq == 3:
        for a in ("q_num_heads", "kv_num_heads"):
            if not attr(node, a, 0):
                yield found(
                    node, "attention.num-heads", f"3-D Q/K/V without the {a} attribute.",
                    ATTENTION_HELPERS + ": reshapeQKVTensor, 'q_num_heads and kv_num_heads ... are required for "
                    "3D Q/K/V tensors'",
                    f"Set {a}, or give Q, K and V in 4-D [B, heads, S, head_size].",
                )
        return
    sq, sk, sv = g.shape(q), g.shape(k), g.shape(v)
    if rq != 4 or sq is None or sk is None or sv is None:
        return
    if isinstance(sq[3], int) and isinstance(sv[3], int) and sq[3] != sv[3]:
        yield found(
            node, "attention.v-head-size", f"V's head size {sv[3]} differs from Q's {sq[3]}; TensorRT's attention "
            "takes Q [B, N_q, S_q, H] and K, V [B, N_kv, S_kv, H] with one H.",
            FUSED_ATTENTION_DOC + " (shapes of Q, K and V)",
            "Pad or project V to Q's head size, or leave this attention unfused (`lookupvit optimize --form "
            "trt-mha` keeps it as MatMul-Softmax-MatMul).",
        )
    nq, nkv = sq[1], sk[1]
    if isinstance(nq, int) and isinstance(nkv, int) and nkv and nq % nkv:
        yield found(
            node, "attention.heads", f"{nq} query heads are not a multiple of {nkv} key/value heads.",
            FUSED_ATTENTION_DOC + " (MHA, GQA with N_q % N_kv == 0, MQA)",
            "Use as many key/value heads as query heads, or a divisor of them.",
        )
    mask = _input(node, 3)
    if mask:
        yield from _attention_mask(node, g, mask, [sq[0], sq[1], sq[2], sk[2]])


def _attention_mask(node: onnx.NodeProto, g: GraphView, mask: str, target: list) -> Iterator[Finding]:
    shape = g.shape(mask)
    if shape is None:
        return
    if len(shape) > 4:
        yield found(
            node, "attention.mask", f"attn_mask has rank {len(shape)}; TensorRT takes masks of rank 4 or less.",
            ATTENTION_HELPERS + ": convertToMaskTensor, 'Attention masks should have rank leq 4'",
            "Give the mask as [B or 1, heads or 1, S_q, S_kv].",
        )
        return
    padded = [1] * (4 - len(shape)) + list(shape)  # the parser prepends unit axes up to rank 4
    for axis, (m, t) in enumerate(zip(padded, target)):
        if isinstance(m, int) and isinstance(t, int) and m not in (1, t):
            yield found(
                node, "attention.mask", f"attn_mask {list(shape)} does not broadcast to [B, N_q, S_q, S_kv] = "
                f"{target} (axis {axis}: {m} vs {t}).",
                ATTENTION_HELPERS + ": convertToMaskTensor (mask unsqueezed to rank 4, then broadcast)",
                "Shape the mask as [B or 1, heads or 1, S_q, S_kv].",
            )
            return


@node_rule("Resize")
def resize_modes(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    src = CHECKERS + ": DEFINE_OP_CHECKER(Resize)"
    mode = attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear", "cubic"):
        yield found(node, "resize.mode", f"Resize mode {mode!r} is not supported.", src,
                    "Use mode 'nearest' or 'linear'.")
    elif mode == "cubic":
        yield found(node, "resize.mode", "Resize mode 'cubic': the parser's checker lets it through but the operator "
                    "table lists only nearest and linear.", OPERATORS_DOC + " (row Resize)",
                    "Use mode 'linear' if the accuracy allows, and confirm the build on a GPU.", severity="warning")
    ctm = attr(node, "coordinate_transformation_mode", "half_pixel")
    if g.opset >= 11 and ctm not in ("half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                                      "align_corners"):
        yield found(node, "resize.coordinates", f"coordinate_transformation_mode {ctm!r} is not supported.", src,
                    "Use half_pixel, pytorch_half_pixel, asymmetric, align_corners or tf_half_pixel_for_nn.")
    if ctm == "tf_half_pixel_for_nn" and attr(node, "nearest_mode", "round_prefer_floor") != "round_prefer_floor":
        yield found(node, "resize.nearest-mode", "tf_half_pixel_for_nn works only with nearest_mode "
                    "round_prefer_floor.", src, "Set nearest_mode = 'round_prefer_floor'.")
    if attr(node, "antialias", 0):
        yield found(node, "resize.antialias", "Antialiasing is not supported.", src, "Set antialias = 0.")
    if attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        yield found(node, "resize.aspect", "Only keep_aspect_ratio_policy 'stretch' is supported.", src,
                    "Set keep_aspect_ratio_policy = 'stretch' and give the exact output sizes.")
    axes = attr(node, "axes", None)
    if axes is not None and len(set(axes)) != len(axes):
        yield found(node, "resize.axes", f"Resize axes {list(axes)} repeat an axis.", src,
                    "List each axis once.")


def _qdq_source(node: onnx.NodeProto) -> str:
    return IMPORTERS + f": QuantDequantLinearHelper (DEFINE_BUILTIN_OP_IMPORTER({node.op_type}))"


@node_rule("QuantizeLinear", "DequantizeLinear")
def qdq_scale_and_zero_point(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    src = _qdq_source(node)
    if len(node.input) < 2 or not node.input[1]:
        yield found(node, "qdq.scale", "No scale input.", src, "Give the scale as input 1.")
        return
    scale = g.value(node.input[1])
    if scale is not None and (scale.size == 0 or not bool(np.all(scale.astype(np.float32) > 0))):
        yield found(node, "qdq.scale", "Scale coefficients must all be positive.", src,
                    "Recalibrate: a zero or negative scale comes from an all-zero or constant tensor; clamp "
                    "the amax to a small positive value.")
    zp = _input(node, 2)
    if zp:
        zt = g.elem_type(zp)
        if zt is not None and TRT_TYPE.get(zt) not in ("INT8", "FP8", "INT4", "FP4", "UINT8"):
            yield found(node, "qdq.type", f"Zero point type {type_name(zt)}: TensorRT quantizes to FP8, INT8, INT4 "
                        "or FP4 only.", src, "Quantize to INT8 (symmetric) or FLOAT8E4M3FN.")
        elif zt == onnx.TensorProto.UINT8:
            yield found(node, "qdq.type", "UINT8 zero point: TensorRT imports it as INT8 (UINT8 quantization is "
                        "for DLA only), which changes the quantized values.", src,
                        "Quantize symmetrically to INT8 with a zero point of 0.")
        zv = g.value(zp)
        if zt != onnx.TensorProto.FLOAT8E4M3FN and zv is not None and np.any(zv.astype(np.float32) != 0):
            yield found(node, "qdq.zero-point", "Non-zero zero point: TensorRT quantizes symmetrically.", src,
                        "Calibrate symmetrically (zero point 0).")
    out_dtype = attr(node, "output_dtype", 0)
    if out_dtype:
        name = TRT_TYPE.get(int(out_dtype))
        ok = name in QUANTIZED if node.op_type == "QuantizeLinear" else name in ("FP32", "FP16", "BF16")
        if not ok:
            yield found(node, "qdq.type", f"output_dtype {type_name(int(out_dtype))} is not allowed here.", src,
                        "QuantizeLinear: FP8, INT8, INT4 or FP4; DequantizeLinear: FLOAT, FLOAT16 or BFLOAT16.")


@node_rule("QuantizeLinear", "DequantizeLinear")
def qdq_axis_and_blocks(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    src = _qdq_source(node)
    if len(node.input) < 2:
        return
    x, s = g.shape(node.input[0]), g.shape(node.input[1])
    if x is None or s is None:
        return
    size = int(np.prod([d for d in s if isinstance(d, int)])) if all(isinstance(d, int) for d in s) else None
    if size in (None, 1):
        return  # per-tensor (or unknown): the axis is ignored
    axis = int(attr(node, "axis", 1))
    if not -len(x) <= axis < len(x):
        yield found(node, "qdq.axis", f"axis {axis} is outside the input's rank {len(x)}.", src,
                    "Set axis to the channel axis of the input.")
        return
    if len(s) == 1:
        k = x[axis]
        if isinstance(k, int) and k != size:
            yield found(node, "qdq.axis", f"{size} scales for {k} channels on axis {axis}.", src,
                        "Give one scale per channel of the quantized axis.")
    elif len(s) == len(x):
        xi, si = [d for d in x if isinstance(d, int)], [d for d in s if isinstance(d, int)]
        if len(xi) == len(x) and len(si) == len(s):
            blocked = [i for i, (a, b) in enumerate(zip(xi, si)) if a != b]
            if len(blocked) != 1:
                yield found(node, "qdq.block", f"Block quantization over axes {blocked}: only one blocked axis is "
                            "allowed.", src, "Block along a single axis (block_size on that axis).")
            elif xi[blocked[0]] % si[blocked[0]]:
                yield found(node, "qdq.block", "The block size does not divide the blocked axis.", src,
                            "Choose a block_size that divides the axis.")
    else:
        yield found(node, "qdq.axis", f"Scale of rank {len(s)} for an input of rank {len(x)}.", src,
                    "Use a scalar, a 1-D per-channel scale, or a block scale of the input's rank.")


@node_rule("Cast", "CastLike")
def cast_strongly_typed(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    to = attr(node, "to", None) if node.op_type == "Cast" else g.elem_type(_input(node, 1))
    if to is None:
        return
    name = TRT_TYPE.get(int(to))
    if name in QUANTIZED:
        yield found(node, "cast.quantized", f"Cast to {type_name(int(to))}: a strongly typed network reaches INT8/FP8 "
                    "only through QuantizeLinear (TensorRT rejects casts to FP8).",
                    IMPORTERS + ": DEFINE_BUILTIN_OP_IMPORTER(Cast); " + OPERATORS_DOC + " (row Cast)",
                    "Replace the Cast with a QuantizeLinear/DequantizeLinear pair (`lookupvit precision int8|fp8`).")
    elif name is None or (name not in SUPPORTED["Cast"] and int(to) != onnx.TensorProto.DOUBLE):
        yield found(node, "cast.type", f"Cast to {type_name(int(to))}, a type TensorRT does not have.",
                    CHECKERS + ": DEFINE_OP_CHECKER(Cast), 'Unsupported data type for the Cast operator'",
                    "Cast to FLOAT, FLOAT16, BFLOAT16, INT32, INT64, UINT8 or BOOL.")


@node_rule("LayerNormalization", "MaxPool", "BatchNormalization")
def single_output(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    extra = [o for o in node.output[1:] if o]
    if extra:
        yield found(node, "outputs", f"{node.op_type} with outputs {extra} besides the first: TensorRT supports only "
                    "the first output.", CHECKERS + f": DEFINE_OP_CHECKER({node.op_type}) (emptyOutputChecker)",
                    "Drop the extra outputs (training artefacts such as Mean and InvStdDev).")


@node_rule("Gelu")
def gelu_approximation(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    mode = attr(node, "approximate", "none")
    if mode not in ("none", "tanh"):
        yield found(node, "gelu.approximate", f"Gelu approximate={mode!r}: ONNX Gelu-20 defines 'none' and 'tanh'.",
                    "ONNX Operators.md, Gelu-20", "Use approximate='none' (erf) or 'tanh'.")
    if g.opset < 20:
        yield found(node, "gelu.opset", f"Gelu in a graph of opset {g.opset}: Gelu exists from opset 20.",
                    "ONNX Operators.md, Gelu-20", "Re-export with opset 20 or newer (`lookupvit export --opset 23`).")


@node_rule("Einsum")
def einsum_equation(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    eq = str(attr(node, "equation", ""))
    bad = sorted({c for c in eq if not ("a" <= c <= "z" or c in "->., ")})
    if bad:
        yield found(node, "einsum.equation", f"Einsum equation {eq!r} uses {' '.join(bad)}: TensorRT takes lower-case "
                    "letters only.", CHECKERS + ": DEFINE_OP_CHECKER(Einsum)",
                    "Rename the subscripts to lower-case letters, or let `lookupvit optimize` rewrite the Einsum.")


@node_rule("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
           "ReduceProd", "ReduceSum", "ReduceSumSquare")
def reduce_axes_constant(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    axes = _input(node, 1)
    if axes and not g.is_constant(axes):
        yield found(node, "reduce.axes", f"{node.op_type}'s axes ({axes!r}) are computed at run time; TensorRT needs "
                    "them as an initializer.", OPERATORS_DOC + f" (row {node.op_type})",
                    "Make the axes a constant (fold constants: `lookupvit optimize`).")


@node_rule("Slice")
def slice_inputs(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    if g.opset >= 10 and not 3 <= len(node.input) <= 5:
        yield found(node, "slice.inputs", f"Slice with {len(node.input)} inputs; from opset 10 it takes 3 to 5.",
                    CHECKERS + ": DEFINE_OP_CHECKER(Slice)", "Give data, starts, ends (and optionally axes, steps).")


@node_rule("Constant")
def constant_value(node: onnx.NodeProto, g: GraphView, ctx: CheckContext) -> Iterator[Finding]:
    for a in ("sparse_value", "value_string", "value_strings"):
        if has_attr(node, a):
            yield found(node, "constant.value", f"Constant with {a}: not supported.",
                        CHECKERS + ": DEFINE_OP_CHECKER(Constant)", "Store the value as a dense tensor initializer.")
