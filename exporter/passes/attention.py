"""Attention passes: find ``softmax(scale * A @ Bt) @ V`` by structure and rewrite it for the target.

The pattern, in 4-D ``[B, H, S, d]`` layout (how every LookupViT we know writes its heads):

    L  = MatMul(A, Bt)                      # A (B, H, Si, d), Bt (B, H, d, Sj): logits (B, H, Si, Sj)
    X  = Transpose*/Mul/Div-by-scalar*(L)   # scale on the logits (Mul or Div), possibly transposed
    P  = [Transpose](Softmax(X, axis))      # the softmax axis must end up as P's last axis
    Y  = MatMul(P, V)                       # V (B, H, Sk, dv): output (B, H, Sq, dv)

with scalar scales also found on A or Bt (scale on the query, or sqrt(scale) on both as torch
writes SDPA below opset 23). If the softmax normalises over L's columns (j), the queries are the
rows of A and the keys the columns of Bt; if it normalises over L's rows (i) -- LookupViT's scatter,
``softmax_M(S^T)`` -- the roles swap: queries = Bt's columns (the lookup keys), keys = A (the
compressed queries). A softmax whose probabilities also feed something else (e.g. a scatter that
reuses the gather *probabilities*, ``softmax_N(S)^T``, which normalises over the wrong axis) is no
attention and is left alone.

Rules relied upon:
- ONNX Attention-23 (4-D inputs): ``Y = softmax(Q K^T * scale) V`` for Q (B, Hq, Sq, d),
  K (B, Hkv, Sk, d), V (B, Hkv, Sk, dv); ``scale`` defaults to 1/sqrt(d), so it is always written.
- ``softmax(X^T)`` over the last axis is ``softmax`` over the rows of X, and ``(s A B^T)^T = s B A^T``,
  hence the scatter equals ``Attention(Q = keys of x, K = queries of z, V = values of z)`` with the
  same scale.
- TensorRT's (pre-10.14) MHA fusion recognises ``MatMul(Q * scale, K^T) -> Softmax(-1) -> MatMul(V)``
  in 4-D layout with the scale on Q (the ``trt-mha`` target).

Roles: ``self-attention`` when queries and keys come from the same activation (through
projections, bias, reshapes, slices); otherwise ``gather`` when the queries are the shorter token
stream (compressed, M < N) and ``scatter`` when they are the longer one; with equal or unknown
lengths, by which axis the softmax normalises.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from .gsutil import (
    Builder,
    is_output,
    norm_axis,
    producer,
    rank,
    scale_of,
    sole_consumer,
    transpose_perm,
    transposed,
)
from .registry import PassContext, PassResult, register_pass

ATTENTION_OPSET = 23
SWAP = [0, 1, 3, 2]
LAYOUT_OPS = {"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Gather", "Split", "Flatten", "Identity"}


@dataclass
class Operand:
    """A logits operand as it enters the logits MatMul: ``rows`` (B, H, S, d) or ``cols`` (B, H, d, S)."""

    tensor: gs.Tensor
    layout: str  # rows | cols

    def rows(self, b: Builder) -> gs.Tensor:
        return self.tensor if self.layout == "rows" else transposed(b, self.tensor, SWAP)

    def cols(self, b: Builder) -> gs.Tensor:
        return self.tensor if self.layout == "cols" else transposed(b, self.tensor, SWAP)

    def length(self):
        shape = self.tensor.shape
        if shape is None or len(shape) != 4:
            return None
        return shape[2] if self.layout == "rows" else shape[3]


@dataclass
class AttentionMatch:
    role: str  # gather | scatter | self-attention
    query: Operand
    key: Operand
    value: gs.Tensor
    scale: float
    output: gs.Tensor  # Y (B, H, Sq, dv), kept: its readers see the rewrite's output
    canonical_mha: bool  # already MatMul(Q * s, K^T) -> Softmax(-1) -> MatMul(V)


def source(t: gs.Tensor, depth: int = 16) -> gs.Tensor:
    """The activation a Q/K/V tensor is projected from: up through layout ops, scalar scales,
    bias Adds and MatMul/Gemm with constant weights."""
    for _ in range(depth):
        node = producer(t)
        if node is None:
            return t
        if node.op in LAYOUT_OPS:
            t = node.inputs[0]
        elif (found := scale_of(node)) is not None:
            t = found[0]
        elif node.op == "Add" and len(node.inputs) == 2 and any(isinstance(i, gs.Constant) for i in node.inputs):
            t = next(i for i in node.inputs if not isinstance(i, gs.Constant))
        elif node.op in ("MatMul", "Gemm") and isinstance(node.inputs[1], gs.Constant):
            t = node.inputs[0]
        else:
            return t
    return t


def strip_scale(b: Builder, t: gs.Tensor, depth: int = 6) -> tuple[gs.Tensor, float]:
    """``t`` without the scalar Mul/Div on its way (through Transpose/Reshape), and the factor."""
    node = producer(t)
    if node is None or depth == 0:
        return t, 1.0
    found = scale_of(node)
    if found is not None:
        base, s = strip_scale(b, found[0], depth - 1)
        return base, s * found[1]
    if node.op in ("Transpose", "Reshape"):
        base, s = strip_scale(b, node.inputs[0], depth - 1)
        if base is node.inputs[0]:
            return t, 1.0
        out = b.node(node.op, [base, *node.inputs[1:]], dict(node.attrs), dtype=t.dtype, shape=t.shape)
        return out, s
    return t, 1.0


def _same_len(a, c) -> bool | None:
    return None if not isinstance(a, int) or not isinstance(c, int) else a == c


def _scaled_directly(t: gs.Tensor) -> bool:
    node = producer(t)
    return node is not None and scale_of(node) is not None


def match_attention(graph: gs.Graph, softmax: gs.Node, b: Builder) -> AttentionMatch | str:
    """The attention around ``softmax``, or the reason there is none."""
    x = softmax.inputs[0]
    r = rank(x)
    if r != 4:
        return "softmax input is not 4-D"
    axis = norm_axis(int(softmax.attrs.get("axis", -1)), r)

    # forward: the probabilities reach MatMul(P, V), at most through one Transpose
    probs = softmax.outputs[0]
    user = sole_consumer(graph, probs)
    if user is None:
        return "softmax probabilities are read by more than one node (not an attention)"
    p_perm = list(range(r))
    if user.op == "Transpose":
        p_perm = transpose_perm(user, r)
        probs = user.outputs[0]
        user = sole_consumer(graph, probs)
        if user is None:
            return "transposed probabilities are read by more than one node"
    if user.op != "MatMul" or user.inputs[0] is not probs:
        return "softmax probabilities do not feed MatMul(P, V)"
    if p_perm[:2] != [0, 1] or p_perm.index(axis) != r - 1:
        return "softmax does not normalise over the axis that MatMul(P, V) contracts"
    value = user.inputs[1]
    if rank(value) != 4:
        return "V is not 4-D"

    # backward: scalar scales and transposes between the logits MatMul and the softmax
    perms: list[list[int]] = []
    scale = 1.0
    t = x
    for _ in range(8):
        node = producer(t)
        if node is None:
            return "no logits MatMul before the softmax"
        found = scale_of(node)
        if found is not None:
            t, s = found
            scale *= s
        elif node.op == "Transpose":
            perms.append(transpose_perm(node, r))
            t = node.inputs[0]
        elif node.op == "MatMul":
            break
        else:
            return f"{node.op} between the logits MatMul and the softmax"
    else:
        return "no logits MatMul before the softmax"
    logits: gs.Node = node
    a, bt = logits.inputs
    if rank(a) != 4 or rank(bt) != 4:
        return "logits operands are not 4-D"
    labels = ["b", "h", "i", "j"]  # axes of L = A @ Bt
    for perm in reversed(perms):
        labels = [labels[q] for q in perm]
    p_labels = [labels[q] for q in p_perm]
    if labels[:2] != ["b", "h"] or p_labels[:2] != ["b", "h"]:
        return "transposes move the batch or head axis"
    over = labels[axis]  # the logits axis the softmax normalises over

    a0, sa = strip_scale(b, a)
    bt0, sb = strip_scale(b, bt)
    rows, cols = Operand(a0, "rows"), Operand(bt0, "cols")
    query, key = (rows, cols) if over == "j" else (cols, rows)
    if source(query.tensor) is source(key.tensor):
        role = "self-attention"
    else:
        sq, sk = query.length(), key.length()
        if isinstance(sq, int) and isinstance(sk, int) and sq != sk:
            role = "gather" if sq < sk else "scatter"
        else:
            role = "gather" if over == "j" else "scatter"
    canonical = (
        over == "j" and not perms and scale == 1.0 and sb == 1.0 and p_perm == list(range(r))
        and x is logits.outputs[0] and sole_consumer(graph, logits.outputs[0]) is softmax
        and (sa == 1.0 or _scaled_directly(a))
    )
    return AttentionMatch(role, query, key, value, scale * sa * sb, user.outputs[0], canonical)


def emit_attention(b: Builder, m: AttentionMatch) -> None:
    """``Y = Attention(Q, K, V, scale)`` (ONNX Attention-23, 4-D inputs)."""
    q, k = m.query.rows(b), m.key.rows(b)
    b.detach(m.output)
    b.node("Attention", [q, k, m.value], {"scale": float(m.scale)}, out=m.output)


def emit_mha(b: Builder, q: gs.Tensor, kt: gs.Tensor, v: gs.Tensor, scale: float, out: gs.Tensor) -> None:
    """``Y = MatMul(Softmax(MatMul(Q * scale, K^T), -1), V)`` in 4-D layout (TensorRT's MHA fusion)."""
    b.detach(out)
    if scale != 1.0:
        c = b.const(np.array(scale, dtype=q.dtype if q.dtype is not None else np.float32), "scale")
        q = b.node("Mul", [q, c], dtype=q.dtype, shape=q.shape)
    shape = None
    if q.shape is not None and kt.shape is not None and len(q.shape) == 4 and len(kt.shape) == 4:
        shape = [*q.shape[:3], kt.shape[3]]
    logits = b.node("MatMul", [q, kt], dtype=q.dtype, shape=shape)
    probs = b.node("Softmax", [logits], {"axis": -1}, dtype=q.dtype, shape=shape)
    b.node("MatMul", [probs, v], out=out)


def _rewrite(graph: gs.Graph, ctx: PassContext, role: str) -> PassResult:
    if ctx.target == "attention" and graph.opset < ATTENTION_OPSET:
        return PassResult(0, f"the Attention op needs opset {ATTENTION_OPSET} (model is opset {graph.opset}; "
                             "run the opset pass first)")
    b = Builder(graph, role)
    done, already = 0, 0
    reasons: Counter = Counter()
    for softmax in [n for n in graph.nodes if n.op == "Softmax"]:
        if not softmax.outputs or not softmax.outputs[0].outputs:
            continue  # dead after an earlier rewrite in this pass
        m = match_attention(graph, softmax, b)
        if isinstance(m, str):
            reasons[m] += 1
            continue
        if m.role != role:
            continue
        if ctx.target == "trt-mha":
            if m.canonical_mha:
                already += 1
                continue
            emit_mha(b, m.query.rows(b), m.key.cols(b), m.value, m.scale, m.output)
        else:
            emit_attention(b, m)
        done += 1
    graph.cleanup()
    if done:
        note = f"{done} {role} rewritten to " + ("Attention" if ctx.target == "attention" else "MatMul-Softmax-MatMul")
    elif already:
        note = f"{already} {role} already in MatMul-Softmax-MatMul form"
    else:
        note = f"no decomposed {role} found"
    if reasons:
        note += "; softmax left alone: " + "; ".join(f"{why} ({n})" for why, n in reasons.most_common())
    return PassResult(done, note, {"left_alone": dict(reasons), "already": already})


@register_pass("gather", "attention", "compressed queries attending to lookup keys/values (softmax over N)")
def gather(graph: gs.Graph, ctx: PassContext) -> PassResult:
    return _rewrite(graph, ctx, "gather")


@register_pass("self-attention", "attention", "the compressed tokens' self-attention where left decomposed")
def self_attention(graph: gs.Graph, ctx: PassContext) -> PassResult:
    return _rewrite(graph, ctx, "self-attention")


@register_pass("scatter", "attention", "lookup tokens attending to compressed tokens (softmax over the transposed logits)")
def scatter(graph: gs.Graph, ctx: PassContext) -> PassResult:
    return _rewrite(graph, ctx, "scatter")


@register_pass("unfuse-attention", "attention", "ONNX Attention nodes to MatMul-Softmax-MatMul (trt-mha target)",
               targets=("trt-mha",))
def unfuse_attention(graph: gs.Graph, ctx: PassContext) -> PassResult:
    b = Builder(graph, "mha")
    done = 0
    skipped: Counter = Counter()
    for node in [n for n in graph.nodes if n.op == "Attention" and n.domain in ("", "ai.onnx", None)]:
        q, k, v = node.inputs[:3]
        extra = [t for t in node.inputs[3:] if t.name]
        used = [o for o in node.outputs[1:] if o.name and (o.outputs or is_output(graph, o))]
        if extra or used:
            skipped["mask, cache or extra outputs"] += 1
            continue
        if node.attrs.get("is_causal", 0) or node.attrs.get("softcap", 0.0) or "q_num_heads" in node.attrs:
            skipped["causal, softcap or 3-D inputs"] += 1
            continue
        if rank(q) != 4 or rank(k) != 4 or rank(v) != 4:
            skipped["inputs not 4-D"] += 1
            continue
        hq, hk = q.shape[1], k.shape[1]
        if not (hq == hk or not isinstance(hq, int) or not isinstance(hk, int)):
            skipped["grouped-query heads"] += 1
            continue
        scale = node.attrs.get("scale")
        if scale is None:
            d = q.shape[3]
            if not isinstance(d, int):
                skipped["unknown head size for the default scale"] += 1
                continue
            scale = 1.0 / math.sqrt(d)
        out = node.outputs[0]
        node.outputs = []
        emit_mha(b, q, transposed(b, k, SWAP), v, float(scale), out)
        done += 1
    graph.cleanup()
    note = f"{done} Attention rewritten to MatMul-Softmax-MatMul" if done else "no Attention node"
    if skipped:
        note += "; left: " + ", ".join(f"{why} ({n})" for why, n in skipped.items())
    return PassResult(done, note, {"left": dict(skipped)})
