"""Fusion eligibility: will TensorRT run an attention as one fused kernel?

Two forms reach TensorRT from our passes (:mod:`exporter.passes.attention`): the ONNX ``Attention``
op (target ``attention``), which the parser turns into an ``IAttention`` layer, and the
``MatMul(Q * scale, K^T) -> Softmax(-1) -> MatMul(V)`` chain (target ``trt-mha``), which TensorRT's
builder pattern-matches. What decides fusion, and where it is stated:

- TensorRT developer guide, "Fused Attention" (Working with Transformers): Q is ``[B, N_q, S_q, H]``,
  K and V ``[B, N_kv, S_kv, H]`` (one head size H), MHA/GQA/MQA need ``N_q % N_kv == 0``; Q or K
  carries the attention scale before the first batched MatMul (a scale on the logits is not the
  pattern). The ONNX parser scales Q and K by sqrt(scale) itself for an Attention node
  (AttentionHelpers.cpp: scaleQKTensor).
- IAttention API: non-decomposable by default, so TensorRT looks for a single fused kernel (an
  Attention node may set ``TRT_decomposable`` to allow a multi-kernel fallback).
- TensorRT 10.6 release notes: FP8 MHA fusion on Ada (sm_89) for sequence lengths up to 3072 and head
  sizes up to 64.
- Precision: the fused kernels run FP16, BF16 (sm_80+), FP8 (sm_89+) and INT8 for the MatMul-Softmax-
  MatMul pattern; an FP32 chain runs as separate MatMul and Softmax kernels. An ONNX ``Attention`` node
  (IAttention) has dedicated kernels in FP16 and BF16 only: in FP32, or fed by Q/DQ, the builder
  refuses it unless it is marked ``TRT_decomposable`` (measured with TensorRT-RTX 1.7.1; the refusal
  is a finding of :func:`exporter.check.rules.attention_kernel`).
- Head size: this project assumes a multiple of 8 and at most 256 (tensor-core alignment of the fused
  kernels); the documents above give no number, so a head size outside it is reported as "unknown",
  not as unfused.

This is a prediction from the graph, made before building: the engine's layer listing (``lookupvit
build`` logs it) is the proof. ``fused`` is None where the rules cannot decide (symbolic shapes, Q/DQ
around the attention, casts inside the MatMul-Softmax-MatMul chain).
"""

from __future__ import annotations

import onnx

from ..profiles import Profile, gpu_has_precision
from .findings import FusionEstimate
from .graph import Dim, GraphView, attr, node_label

DOC = "TensorRT developer guide: Fused Attention; IAttention API; TensorRT 10.6 release notes (FP8 MHA on Ada)"
LAYOUT = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Flatten"}
PRECISION: dict[int, str] = {
    onnx.TensorProto.FLOAT: "fp32",
    onnx.TensorProto.FLOAT16: "fp16",
    onnx.TensorProto.BFLOAT16: "bf16",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.FLOAT8E4M3FN: "fp8",
}
HEAD_SIZE_ALIGN, HEAD_SIZE_MAX = 8, 256
FP8_ADA = {"max_seq": 3072, "max_head": 64}


def compute_precision(g: GraphView, tensor: str) -> str | None:
    """The precision an attention input computes in: a dequantized input counts as its quantized type."""
    name, depth = tensor, 0
    while depth < 8 and name in g.producers and g.producers[name].op_type in LAYOUT:
        name, depth = g.producers[name].input[0], depth + 1
    prod = g.producers.get(name)
    if prod is not None and prod.op_type == "DequantizeLinear":
        return PRECISION.get(g.elem_type(prod.input[0]) or 0)
    t = g.elem_type(tensor)
    return PRECISION.get(t) if t is not None else None


def _decide(
    precision: str | None, hq: Dim, hkv: Dim, h: Dim, sq: Dim, skv: Dim, profile: Profile | None, reasons: list[str]
) -> bool | None:
    verdict: bool | None = True
    if precision is None:
        reasons.append("element type unknown")
        verdict = None
    elif precision == "fp32":
        reasons.append("fp32: TensorRT has no fused attention kernels in FP32 (runs MatMul + Softmax + MatMul)")
        return False
    elif precision in ("int8", "fp8"):
        reasons.append(f"{precision} via Q/DQ: whether TensorRT folds the quantization into its attention kernel "
                       "is decided when building")
        verdict = None
    cc = profile.compute_capability if profile is not None else None
    if cc is not None and precision in ("bf16", "fp8") and not gpu_has_precision(cc, precision):
        reasons.append(f"{precision} needs a newer GPU than {profile.sm}")  # type: ignore[union-attr]
        return False
    if isinstance(hq, int) and isinstance(hkv, int) and hkv and hq % hkv:
        reasons.append(f"{hq} query heads are not a multiple of {hkv} key/value heads")
        return False
    if not isinstance(h, int):
        reasons.append("head size unknown")
        verdict = None
    elif h % HEAD_SIZE_ALIGN or h > HEAD_SIZE_MAX:
        reasons.append(f"head size {h} is not a multiple of {HEAD_SIZE_ALIGN} up to {HEAD_SIZE_MAX} (assumed "
                       "alignment of the fused kernels)")
        verdict = None
    if precision == "fp8" and cc == (8, 9):
        longest = max((s for s in (sq, skv) if isinstance(s, int)), default=None)
        if (isinstance(h, int) and h > FP8_ADA["max_head"]) or (longest is not None and longest > FP8_ADA["max_seq"]):
            reasons.append(f"FP8 MHA on Ada fuses head sizes up to {FP8_ADA['max_head']} and sequences up to "
                           f"{FP8_ADA['max_seq']}")
            return False
    if verdict:
        reasons.append(f"{precision}, {hq} heads of size {h}, S_q={sq}, S_kv={skv}: within the fused kernels' limits")
    return verdict


def _attention(node: onnx.NodeProto, g: GraphView, profile: Profile | None) -> FusionEstimate:
    q, k = node.input[0], node.input[1]
    sq, sk = g.shape(q), g.shape(k)
    reasons: list[str] = []
    hq = hkv = h = seq_q = seq_kv = None
    if sq is not None and sk is not None and len(sq) == 4 and len(sk) == 4:  # [B, N, S, H]
        hq, seq_q, h = sq[1], sq[2], sq[3]
        hkv, seq_kv = sk[1], sk[2]
    elif sq is not None and len(sq) == 3:  # [B, S, N*H], heads from the attributes
        hq, hkv = attr(node, "q_num_heads", None), attr(node, "kv_num_heads", None)
        seq_q, seq_kv = sq[1], sk[1] if sk else None
        h = sq[2] // hq if isinstance(sq[2], int) and isinstance(hq, int) and hq else None
    else:
        reasons.append("Q/K rank unknown")
    precision = compute_precision(g, q)
    if precision in ("fp32", "int8", "fp8"):  # IAttention kernels: fp16/bf16 only (measured; rules.attention_kernel)
        decomposable = precision == "fp32" and int(attr(node, "TRT_decomposable", 0) or 0) == 1
        reasons.append(f"{precision}: IAttention has no {precision} kernel" + (
            "; marked TRT_decomposable, so it runs decomposed (MatMul + Softmax + MatMul), not fused" if decomposable
            else "; the builder refuses this node (lookupvit precision --target tensorrt writes MatMul-Softmax-MatMul)"))
        return FusionEstimate(node_label(node), "Attention", precision, hq, hkv, h, seq_q, seq_kv, False,  # type: ignore[arg-type]
                              tuple(reasons), DOC)
    fused = _decide(precision, hq, hkv, h, seq_q, seq_kv, profile, reasons)  # type: ignore[arg-type]
    return FusionEstimate(node_label(node), "Attention", precision or "?", hq, hkv, h, seq_q, seq_kv, fused,  # type: ignore[arg-type]
                          tuple(reasons), DOC)


def _through(g: GraphView, name: str, ops: set[str], up: bool) -> tuple[onnx.NodeProto | None, list[str]]:
    """Follow single-consumer (down) or producer (up) links through ``ops``; return the node reached
    and the op types passed."""
    passed: list[str] = []
    for _ in range(6):
        if up:
            node = g.producers.get(name)
        else:
            users = g.consumers.get(name, [])
            node = users[0] if len(users) == 1 else None
        if node is None or node.op_type not in ops:
            return node, passed
        passed.append(node.op_type)
        name = node.input[0] if up else node.output[0]
    return None, passed


def _mha(softmax: onnx.NodeProto, g: GraphView, profile: Profile | None) -> FusionEstimate | None:
    qdq = {"QuantizeLinear", "DequantizeLinear"}
    bmm1, before = _through(g, softmax.input[0], {"Cast", "Mul", "Div", "Add", *qdq}, up=True)
    bmm2, after = _through(g, softmax.output[0], {"Cast", *qdq}, up=False)
    if bmm1 is None or bmm1.op_type != "MatMul" or bmm2 is None or bmm2.op_type != "MatMul":
        return None
    a, b, v = bmm1.input[0], bmm1.input[1], bmm2.input[1]
    sa, sb, sv = g.shape(a), g.shape(b), g.shape(v)
    reasons: list[str] = []
    hq = hkv = h = seq_q = seq_kv = None
    four_d = all(s is not None and len(s) == 4 for s in (sa, sb, sv))
    if four_d:  # A [B, N, S_q, H] @ Bt [B, N, H, S_kv]
        hq, seq_q, h = sa[1], sa[2], sa[3]  # type: ignore[index]
        hkv, seq_kv = sb[1], sb[3]  # type: ignore[index]
    precision = compute_precision(g, a)
    fused = _decide(precision, hq, hkv, h, seq_q, seq_kv, profile, reasons)
    if not four_d:
        reasons.append("operands are not 4-D [B, N, S, H]: not the fused pattern")
        fused = False
    if any(op in ("Mul", "Div") for op in before):
        reasons.append("the scale is applied to the logits, not to Q or K before the first MatMul")
        fused = False
    if "Cast" in before or "Cast" in after:
        reasons.append("Casts around the Softmax (softmax kept in fp32): whether TensorRT matches the pattern "
                       "across them is not documented")
        fused = None if fused else fused
    return FusionEstimate(node_label(softmax), "trt-mha", precision or "?", hq, hkv, h, seq_q, seq_kv, fused,  # type: ignore[arg-type]
                          tuple(reasons), DOC)


def fusion_eligibility(g: GraphView, profile: Profile | None = None) -> list[FusionEstimate]:
    """One estimate per Attention node and per MatMul-Softmax-MatMul chain, in graph order."""
    out: list[FusionEstimate] = []
    for node in g.model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type == "Attention":
            out.append(_attention(node, g, profile))
        elif node.op_type == "Softmax":
            est = _mha(node, g, profile)
            if est is not None:
                out.append(est)
    return out
