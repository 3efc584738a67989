"""Canonicalisation passes: put the graph in one form before the attention matchers look at it.

- ``opset``: upgrade the default ONNX domain to opset 23 (``onnx.version_converter``), the first
  opset with the ``Attention`` op (ONNX operator changelog, Attention-23).
- ``einsum``: a two-operand batched ``Einsum`` is a ``MatMul`` between operands transposed to
  ``[batch..., free_a, k]`` and ``[batch..., k, free_b]`` (MatMul-13 broadcasts the batch axes),
  followed by a Transpose to the requested output order.
- ``fold-constants``: onnx-graphsurgeon's ``fold_constants`` (evaluates constant subgraphs with
  ONNX Runtime, folds static ``Shape`` values).
- ``layout``: identity Transpose/Reshape dropped, Transpose chains composed, Reshape chains
  merged, and ``Reshape([-1, a, b]) -> Transpose -> Reshape([lead..., b, a])`` (how torch's exporter
  below opset 23 writes ``k.transpose(-2, -1)`` inside ``scaled_dot_product_attention``) replaced by
  one Transpose.
- ``layernorm``: ``(x - mean) / sqrt(var + eps) * g + b`` to ``LayerNormalization`` (opset 17).
- ``gelu``: ``x * 0.5 * (1 + erf(x / sqrt(2)))`` to ``Gelu`` (opset 20; torch decomposes GELU below).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import onnx_graphsurgeon as gs

from .gsutil import (
    Builder,
    const_ints,
    dims_of,
    is_output,
    norm_axis,
    op_is,
    producer,
    rank,
    reshape_result,
    scalar,
    sole_consumer,
    transpose_perm,
    transposed,
)
from .registry import PassContext, PassResult, register_pass

ATTENTION_OPSET = 23


def bypass(graph: gs.Graph, old: gs.Tensor, new: gs.Tensor) -> bool:
    """Make every reader of ``old`` read ``new`` instead (not possible for a graph output)."""
    if old is new or is_output(graph, old):
        return False
    for node in list(old.outputs):
        node.inputs = [new if t is old else t for t in node.inputs]
    return True


def _describe(counts: Counter) -> str:
    return ", ".join(f"{n} {what}" for what, n in counts.most_common())


# ------------------------------------------------------------------------------------------- opset


@register_pass("opset", "canonical", "upgrade the model to opset 23 (the Attention op) with onnx.version_converter",
               targets=("attention", "plugin"))
def upgrade_opset(graph: gs.Graph, ctx: PassContext) -> PassResult:
    from onnx import version_converter

    if graph.opset >= ATTENTION_OPSET:
        return PassResult(0, f"already opset {graph.opset}")
    old = graph.opset
    converted = version_converter.convert_version(gs.export_onnx(graph), ATTENTION_OPSET)
    return PassResult(1, f"opset {old} -> {ATTENTION_OPSET}", graph=gs.import_onnx(converted))


# ------------------------------------------------------------------------------------------ einsum


def _einsum_plan(equation: str) -> tuple[list[int], list[int], list[int]] | None:
    """Transposes for a two-operand Einsum written as MatMul: (perm_a, perm_b, perm_out), or None."""
    eq = equation.replace(" ", "")
    if "->" not in eq or "..." in eq:
        return None
    lhs, out = eq.split("->")
    ops = lhs.split(",")
    if len(ops) != 2:
        return None
    a, b = ops
    if any(len(set(s)) != len(s) for s in (a, b, out)) or any(c not in a + b for c in out):
        return None
    batch = [c for c in out if c in a and c in b]
    contract = [c for c in a if c in b and c not in out]
    free_a = [c for c in a if c not in b]
    free_b = [c for c in b if c not in a]
    if any(c not in out for c in free_a + free_b) or len(contract) != 1 or len(free_b) != 1:
        return None
    if (batch and len(free_a) != 1) or not free_a:
        return None
    mm = batch + free_a + free_b  # MatMul output labels
    return (
        [a.index(c) for c in batch + free_a + contract],
        [b.index(c) for c in batch + contract + free_b],
        [mm.index(c) for c in out],
    )


@register_pass("einsum", "canonical", "two-operand batched Einsum to Transpose + MatMul (+ Transpose)")
def einsum_to_matmul(graph: gs.Graph, ctx: PassContext) -> PassResult:
    b = Builder(graph, "einsum")
    done, skipped = 0, 0
    for node in [n for n in graph.nodes if n.op == "Einsum"]:
        eq = node.attrs.get("equation", "")
        eq = eq.decode() if isinstance(eq, bytes) else str(eq)
        plan = _einsum_plan(eq) if len(node.inputs) == 2 else None
        if plan is None:
            skipped += 1
            continue
        perm_a, perm_b, perm_out = plan
        x, y = node.inputs
        out = node.outputs[0]
        xa = transposed(b, x, perm_a) if perm_a != list(range(len(perm_a))) else x
        yb = transposed(b, y, perm_b) if perm_b != list(range(len(perm_b))) else y
        node.outputs = []
        if perm_out == list(range(len(perm_out))):
            b.node("MatMul", [xa, yb], out=out)
        else:
            inv = [perm_out.index(i) for i in range(len(perm_out))]
            mm_shape = None if out.shape is None else [out.shape[i] for i in inv]
            mm = b.node("MatMul", [xa, yb], dtype=out.dtype, shape=mm_shape)
            b.node("Transpose", [mm], {"perm": perm_out}, out=out)
        done += 1
    note = f"{done} Einsum rewritten" + (f", {skipped} left (not a two-operand batched product)" if skipped else "")
    return PassResult(done, note if done or skipped else "no Einsum")


# ---------------------------------------------------------------------------------- fold-constants


@register_pass("fold-constants", "canonical", "fold constant subgraphs and static shapes (graph-surgeon, ONNX Runtime)")
def fold_constants(graph: gs.Graph, ctx: PassContext) -> PassResult:
    from onnx_graphsurgeon.logger import G_LOGGER

    before = len(graph.nodes)
    severity = G_LOGGER.severity
    G_LOGGER.severity = G_LOGGER.ERROR
    try:
        graph.toposort()
        graph.fold_constants(size_threshold=64 << 20, partitioning="basic")
        graph.cleanup()
    finally:
        G_LOGGER.severity = severity
    removed = before - len(graph.nodes)
    return PassResult(max(removed, 0), f"{removed} nodes folded" if removed > 0 else "nothing to fold")


# ------------------------------------------------------------------------------------------ layout


def _rtr_to_transpose(b: Builder, node: gs.Node) -> gs.Tensor | None:
    """Reshape(X, [lead, tail...]) -> Transpose(p, p[0] = 0) -> Reshape(to X's leading dims + the
    permuted tail) is Transpose(X) on the tail axes. Returns the new Transpose output or None."""
    t = op_is(node.inputs[0], "Transpose")
    r1 = t is not None and op_is(t.inputs[0], "Reshape")
    if not t or not r1 or len(t.inputs[0].outputs) != 1 or len(node.inputs[0].outputs) != 1:
        return None
    x = r1.inputs[0]
    sx = dims_of(x)
    merged = reshape_result(r1, sx)
    if sx is None or merged is None:
        return None
    k = len(sx) - len(merged) + 1
    if k < 1 or merged[1:] != sx[k:]:
        return None
    p = transpose_perm(t, len(merged))
    if p[0] != 0:
        return None
    t_dims = [merged[0]] + [merged[i] for i in p[1:]]
    if reshape_result(node, t_dims) != sx[:k] + t_dims[1:]:
        return None
    perm = list(range(k)) + [k - 1 + i for i in p[1:]]
    return transposed(b, x, perm)


@register_pass("layout", "canonical", "drop identity Transpose/Reshape, compose Transpose chains, merge Reshape chains")
def simplify_layout(graph: gs.Graph, ctx: PassContext) -> PassResult:
    b = Builder(graph, "layout")
    counts: Counter = Counter()
    for _ in range(4):  # a rewrite can expose another (a merged pair becoming the identity)
        found = sum(counts.values())
        for node in list(graph.nodes):
            if not node.outputs or (not node.outputs[0].outputs and not is_output(graph, node.outputs[0])):
                continue  # dead, removed by cleanup
            y = node.outputs[0]
            if node.op == "Transpose":
                x = node.inputs[0]
                r = rank(x) or len(node.attrs.get("perm", []))
                if not r:
                    continue
                perm = transpose_perm(node, r)
                if perm == list(range(r)):
                    counts["identity Transpose"] += bypass(graph, y, x)
                elif op_is(x, "Transpose"):
                    counts["Transpose chains composed"] += bypass(graph, y, transposed(b, x, perm))
            elif node.op == "Reshape":
                x = node.inputs[0]
                zeros = 0 in (const_ints(node.inputs[1]) or [0]) and not node.attrs.get("allowzero", 0)
                inner = op_is(x, "Reshape")
                if inner is not None and not zeros:
                    node.inputs[0] = inner.inputs[0]
                    counts["Reshape chains merged"] += 1
                    continue
                dims = dims_of(x)
                if dims is not None and reshape_result(node, dims) == dims:
                    counts["identity Reshape"] += bypass(graph, y, x)
                    continue
                new = _rtr_to_transpose(b, node)
                if new is not None:
                    counts["Reshape-Transpose-Reshape to Transpose"] += bypass(graph, y, new)
        graph.cleanup()
        if sum(counts.values()) == found:
            break
    done = sum(counts.values())
    return PassResult(done, _describe(counts) if done else "no redundant layout op", dict(counts))


# --------------------------------------------------------------------------------------- layernorm


def _reduce_axes(node: gs.Node) -> list[int] | None:
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    return const_ints(node.inputs[1]) if len(node.inputs) > 1 else None


def _last_axis_mean(node: gs.Node | None, x: gs.Tensor | None = None) -> bool:
    if node is None or node.op != "ReduceMean" or (x is not None and node.inputs[0] is not x):
        return False
    r = rank(node.inputs[0])
    axes = _reduce_axes(node)
    return bool(r and axes and len(axes) == 1 and norm_axis(axes[0], r) == r - 1 and node.attrs.get("keepdims", 1))


def _single(graph: gs.Graph, t: gs.Tensor, op: str) -> gs.Node | None:
    node = sole_consumer(graph, t)
    return node if node is not None and node.op == op else None


def _other(node: gs.Node, t: gs.Tensor) -> gs.Tensor | None:
    ins = [i for i in node.inputs if i is not t]
    return ins[0] if len(ins) == 1 else None


def _match_layernorm(graph: gs.Graph, mean_node: gs.Node) -> tuple | None:
    """From ``mean = ReduceMean(x, -1)``: Sub -> (Pow 2 | Mul self) -> ReduceMean -> Add eps -> Sqrt
    -> Div (or Reciprocal + Mul) -> [Mul gamma] -> [Add beta]."""
    if not _last_axis_mean(mean_node):
        return None
    x, mean = mean_node.inputs[0], mean_node.outputs[0]
    sub = _single(graph, mean, "Sub")
    if sub is None or sub.inputs[0] is not x or sub.inputs[1] is not mean:
        return None
    d = sub.outputs[0]
    readers = list({id(n): n for n in d.outputs}.values())  # Mul(d, d) reads d twice
    if len(readers) != 2 or is_output(graph, d):
        return None
    sq = next((n for n in readers if (n.op == "Pow" and n.inputs[0] is d and scalar(n.inputs[1]) == 2.0)
               or (n.op == "Mul" and n.inputs[0] is d and n.inputs[1] is d)), None)
    norm = next((n for n in readers if n is not sq), None)
    if sq is None or norm is None:
        return None
    var = _single(graph, sq.outputs[0], "ReduceMean")
    if var is None or not _last_axis_mean(var, sq.outputs[0]):
        return None
    add = _single(graph, var.outputs[0], "Add")
    eps = scalar(_other(add, var.outputs[0])) if add is not None else None
    if add is None or eps is None:
        return None
    sqrt = _single(graph, add.outputs[0], "Sqrt")
    if sqrt is None:
        return None
    std = sqrt.outputs[0]
    if norm.op == "Div" and norm.inputs[0] is d and norm.inputs[1] is std:
        y = norm.outputs[0]
    else:
        rec = _single(graph, std, "Reciprocal")
        if rec is None or norm.op != "Mul" or _other(norm, d) is not rec.outputs[0]:
            return None
        y = norm.outputs[0]
    gamma = beta = None
    mul = _single(graph, y, "Mul")
    g = _other(mul, y) if mul is not None else None
    if mul is not None and isinstance(g, gs.Constant) and g.values.ndim == 1:
        gamma, y = g, mul.outputs[0]
        add_b = _single(graph, y, "Add")
        c = _other(add_b, y) if add_b is not None else None
        if add_b is not None and isinstance(c, gs.Constant) and c.values.ndim == 1:
            beta, y = c, add_b.outputs[0]
    return x, y, float(eps), gamma, beta


@register_pass("layernorm", "canonical", "decomposed (x - mean) / sqrt(var + eps) * g + b to LayerNormalization")
def fuse_layernorm(graph: gs.Graph, ctx: PassContext) -> PassResult:
    if graph.opset < 17:
        return PassResult(0, f"LayerNormalization needs opset 17 (model is opset {graph.opset})")
    b = Builder(graph, "layernorm")
    done = 0
    for node in [n for n in graph.nodes if n.op == "ReduceMean"]:
        m = _match_layernorm(graph, node)
        if m is None:
            continue
        x, y, eps, gamma, beta = m
        width = x.shape[-1] if x.shape else None
        if not isinstance(width, int):
            width = gamma.values.size if gamma is not None else None
        if width is None:
            continue
        dtype = x.dtype if x.dtype is not None else np.float32
        gamma = gamma if gamma is not None else b.const(np.ones(width, dtype=dtype), "ln_scale")
        beta = beta if beta is not None else b.const(np.zeros(width, dtype=dtype), "ln_bias")
        b.detach(y)
        b.node("LayerNormalization", [x, gamma, beta], {"axis": -1, "epsilon": eps}, out=y)
        done += 1
    return PassResult(done, f"{done} LayerNormalization fused" if done else "no decomposed LayerNorm")


# -------------------------------------------------------------------------------------------- gelu


def _mul_leaves(graph: gs.Graph, t: gs.Tensor, stop: set[int], depth: int = 3) -> list[gs.Tensor]:
    """The factors of a product tree of Mul nodes (single-use intermediates) ending in ``t``."""
    node = producer(t)
    if node is None or node.op != "Mul" or depth == 0 or id(t) in stop:
        return [t]
    leaves: list[gs.Tensor] = []
    for i in node.inputs:
        inner = producer(i)
        if inner is not None and inner.op == "Mul" and len(i.outputs) == 1 and not is_output(graph, i):
            leaves += _mul_leaves(graph, i, stop, depth - 1)
        else:
            leaves.append(i)
    return leaves


@register_pass("gelu", "canonical", "decomposed x * 0.5 * (1 + erf(x / sqrt 2)) to Gelu (opset 20)")
def fuse_gelu(graph: gs.Graph, ctx: PassContext) -> PassResult:
    if graph.opset < 20:
        return PassResult(0, f"Gelu needs opset 20 (model is opset {graph.opset})")
    b = Builder(graph, "gelu")
    done = 0
    for erf in [n for n in graph.nodes if n.op == "Erf"]:
        scaled = producer(erf.inputs[0])
        if scaled is None or scaled.op not in ("Div", "Mul"):
            continue
        c = scalar(scaled.inputs[1])
        x = scaled.inputs[0]
        if c is None or not math.isclose(c if scaled.op == "Div" else 1.0 / c, math.sqrt(2.0), rel_tol=1e-5):
            continue
        add = _single(graph, erf.outputs[0], "Add")
        if add is None or scalar(_other(add, erf.outputs[0])) != 1.0:
            continue
        # walk up to two single-use Muls from the Add and check the product is x * 0.5 * (1 + erf)
        t = add.outputs[0]
        for _ in range(3):
            nxt = _single(graph, t, "Mul")
            if nxt is None:
                break
            t = nxt.outputs[0]
            leaves = _mul_leaves(graph, t, {id(x)})
            halves = [leaf for leaf in leaves if scalar(leaf) == 0.5]
            if sorted(map(id, leaves)) == sorted(map(id, [x, add.outputs[0], *halves])) and len(halves) == 1:
                b.detach(t)
                b.node("Gelu", [x], out=t)
                done += 1
                break
    return PassResult(done, f"{done} Gelu fused" if done else "no decomposed GELU")
