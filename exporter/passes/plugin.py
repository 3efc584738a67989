"""The ``lookup-plugin`` pass (target ``plugin``): each LookupViT layer's gather and scatter become
the plugin pair of ``plugins`` (``LookupGather`` -> ``LookupScatter``, sharing the logits or the
probabilities), in the ``lookupvit`` domain, defined by local functions so that ONNX Runtime runs
the result unchanged (see ``plugins.onnx_form`` for the TensorRT import rule).

It runs after the ``gather`` and ``scatter`` passes and matches two forms, by structure:

- logit reuse (the paper; ours and the foreign LookupViTs): two ONNX ``Attention`` nodes (4-D, no
  mask, cache, causal or softcap) whose queries and keys are swapped,
      gather  = Attention(Q = q_z, K = k_x, V = v_x, scale)      # (B, H, M, d)
      scatter = Attention(Q = k_x, K = q_z, V = v_z, scale)      # (B, H, N, d)
  which is exactly ``softmax_N(S) v_x`` and ``softmax_M(S^T) v_z`` for S = scale q_z k_x^T
  (``(s A B^T)^T = s B A^T``); the scales must agree. Tensors are compared through ``Transpose``
  chains (q and Transpose(Transpose(q)) are the same operand). The gather is the one whose queries
  are the shorter stream (M < N), or, with unknown lengths, the one the scatter's values depend on.
- probability reuse (``scatter: probs``): a ``Softmax`` over the last axis of scalar-scaled
  ``MatMul(A, Bt)`` whose probabilities feed exactly ``MatMul(P, v_x)`` and
  ``Transpose(P, [0, 1, 3, 2]) -> MatMul(P^T, v_z)``; no ``Attention`` can express it (it normalises
  over N, not over the M that the scatter's MatMul contracts).

The scatter reads ``shared`` (stored once by the gather, B*H*M*N values) instead of recomputing
``q_z k_x^T``; see docs/plugin.md for why this is the choice made without a GPU to measure on.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import onnx_graphsurgeon as gs

from plugins import DOMAIN, GATHER, SCATTER
from plugins.onnx_form import add_to_graph, node_attrs

from .attention import SWAP, strip_scale
from .gsutil import Builder, is_output, norm_axis, producer, rank, scale_of, transpose_perm, transposed
from .registry import PassContext, PassResult, register_pass

SCALE_RTOL = 1e-6


@dataclass
class Pair:
    """One layer's gather and scatter, ready to emit."""

    q: gs.Tensor  # (B, H, M, d)
    k: gs.Tensor  # (B, H, N, d)
    v_x: gs.Tensor  # (B, H, N, d)
    v_z: gs.Tensor  # (B, H, M, d)
    scale: float
    share_probs: bool
    out_z: gs.Tensor  # kept: its readers see the gather's output
    out_x: gs.Tensor
    nodes: tuple[gs.Node, ...]  # the nodes whose outputs the pair takes over


def canon(t: gs.Tensor) -> tuple[str, tuple[int, ...]]:
    """``t`` as (name of the tensor below its Transpose chain, composed permutation)."""
    perm = list(range(rank(t) or 4))
    for _ in range(8):
        node = producer(t)
        if node is None or node.op != "Transpose":
            break
        inner = transpose_perm(node, len(perm))
        perm = [inner[p] for p in perm]
        t = node.inputs[0]
    return t.name, tuple(perm)


def _attention_nodes(graph: gs.Graph, skipped: Counter) -> list[gs.Node]:
    found = []
    for node in graph.nodes:
        if node.op != "Attention" or node.domain not in ("", "ai.onnx", None):
            continue
        extra = [t for t in node.inputs[3:] if t.name]
        used = [o for o in node.outputs[1:] if o.name and (o.outputs or is_output(graph, o))]
        if extra or used or node.attrs.get("is_causal", 0) or node.attrs.get("softcap", 0.0) \
                or "q_num_heads" in node.attrs or any(rank(t) != 4 for t in node.inputs[:3]):
            skipped["Attention with mask, cache, extra outputs, causal, softcap or 3-D inputs"] += 1
            continue
        found.append(node)
    return found


def _scale(node: gs.Node) -> float | None:
    scale = node.attrs.get("scale")
    if scale is not None:
        return float(scale)
    d = node.inputs[0].shape[3] if node.inputs[0].shape is not None else None
    return 1.0 / math.sqrt(d) if isinstance(d, int) else None


def _depends_on(t: gs.Tensor, target: gs.Tensor, limit: int = 4000) -> bool:
    """Whether ``t`` is computed from ``target`` (a bounded walk up the producers)."""
    seen: set[int] = set()
    stack = [t]
    while stack and len(seen) < limit:
        cur = stack.pop()
        if cur is target:
            return True
        node = producer(cur)
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        stack.extend(node.inputs)
    return False


def attention_pairs(graph: gs.Graph, skipped: Counter) -> list[Pair]:
    nodes = _attention_nodes(graph, skipped)
    by_qk: dict[tuple, list[gs.Node]] = {}
    for n in nodes:
        by_qk.setdefault((canon(n.inputs[0]), canon(n.inputs[1])), []).append(n)
    pairs, taken = [], set()
    for a in nodes:
        if id(a) in taken:
            continue
        partners = [b for b in by_qk.get((canon(a.inputs[1]), canon(a.inputs[0])), [])
                    if b is not a and id(b) not in taken]
        if not partners:
            continue
        b = partners[0]
        sa, sb = _scale(a), _scale(b)
        if sa is None or sb is None or abs(sa - sb) > SCALE_RTOL * abs(sa):
            skipped["Attention pair with different or unknown scales"] += 1
            continue
        la = a.inputs[0].shape[2] if a.inputs[0].shape is not None else None
        lb = b.inputs[0].shape[2] if b.inputs[0].shape is not None else None
        if isinstance(la, int) and isinstance(lb, int) and la != lb:
            gather, scatter = (a, b) if la < lb else (b, a)
        elif _depends_on(b.inputs[2], a.outputs[0]):
            gather, scatter = a, b
        elif _depends_on(a.inputs[2], b.outputs[0]):
            gather, scatter = b, a
        else:
            skipped["Attention pair whose order cannot be told"] += 1
            continue
        taken |= {id(a), id(b)}
        q, k, v_x = gather.inputs[:3]
        pairs.append(Pair(q, k, v_x, scatter.inputs[2], sa, False, gather.outputs[0], scatter.outputs[0],
                          (gather, scatter)))
    return pairs


def probs_pairs(graph: gs.Graph, b: Builder, skipped: Counter) -> list[Pair]:
    pairs = []
    for softmax in [n for n in graph.nodes if n.op == "Softmax"]:
        x = softmax.inputs[0]
        if rank(x) != 4 or norm_axis(int(softmax.attrs.get("axis", -1)), 4) != 3:
            continue
        p = softmax.outputs[0]
        readers = list(p.outputs)
        if len(readers) != 2 or is_output(graph, p):
            continue
        mm = [r for r in readers if r.op == "MatMul" and r.inputs[0] is p]
        tr = [r for r in readers if r.op == "Transpose" and transpose_perm(r, 4) == SWAP]
        if len(mm) != 1 or len(tr) != 1:
            continue
        pt = tr[0].outputs[0]
        if len(pt.outputs) != 1 or is_output(graph, pt) or pt.outputs[0].op != "MatMul" or pt.outputs[0].inputs[0] is not pt:
            continue
        scatter_mm = pt.outputs[0]
        # back from the softmax: scalar scales, then the logits MatMul(A, Bt)
        t, scale = x, 1.0
        node = producer(t)
        while node is not None and (found := scale_of(node)) is not None:
            t, scale = found[0], scale * found[1]
            node = producer(t)
        if node is None or node.op != "MatMul" or rank(node.inputs[0]) != 4 or rank(node.inputs[1]) != 4:
            skipped["probability-reusing softmax without a 4-D logits MatMul before it"] += 1
            continue
        a, sa = strip_scale(b, node.inputs[0])
        bt, sb = strip_scale(b, node.inputs[1])
        pairs.append(Pair(a, transposed(b, bt, SWAP), mm[0].inputs[1], scatter_mm.inputs[1], scale * sa * sb, True,
                          mm[0].outputs[0], scatter_mm.outputs[0], (mm[0], scatter_mm)))
    return pairs


def emit(b: Builder, pair: Pair) -> None:
    """``LookupGather(q, k, v_x) -> (out_z, shared)``; ``LookupScatter(shared, v_z) -> out_x``."""
    attrs = node_attrs(pair.scale, pair.share_probs)
    for t in (pair.out_z, pair.out_x):
        b.detach(t)
    shape = None
    if pair.q.shape is not None and pair.k.shape is not None:
        shape = [*pair.q.shape[:3], pair.k.shape[2]]  # (B, H, M, N)
    shared = gs.Variable(b.name("shared"), dtype=pair.q.dtype, shape=shape)
    b.graph.nodes.append(gs.Node(GATHER, b.name("gather"), attrs=dict(attrs), inputs=[pair.q, pair.k, pair.v_x],
                                 outputs=[pair.out_z, shared], domain=DOMAIN))
    b.graph.nodes.append(gs.Node(SCATTER, b.name("scatter"), attrs=dict(attrs), inputs=[shared, pair.v_z],
                                 outputs=[pair.out_x], domain=DOMAIN))


@register_pass("lookup-plugin", "plugin", "each layer's gather/scatter pair (Attention pair or probability-reusing "
               "softmax) to the LookupGather/LookupScatter plugin pair", targets=("plugin",))
def lookup_plugin(graph: gs.Graph, ctx: PassContext) -> PassResult:
    b = Builder(graph, "lookup")
    skipped: Counter = Counter()
    logits = attention_pairs(graph, skipped)
    probs = probs_pairs(graph, b, skipped)
    for pair in logits + probs:
        emit(b, pair)
    if logits or probs:
        add_to_graph(graph)
    graph.cleanup()
    done = len(logits) + len(probs)
    parts = [f"{len(logits)} logit-reuse pairs (two Attention nodes)" if logits else "",
             f"{len(probs)} probability-reuse pairs (shared softmax)" if probs else ""]
    note = (", ".join(p for p in parts if p) + f" to {GATHER} + {SCATTER}") if done else "no gather/scatter pair found"
    if skipped:
        note += "; left: " + ", ".join(f"{why} ({n})" for why, n in skipped.most_common())
    return PassResult(done, note, {"logit_reuse": len(logits), "probability_reuse": len(probs), "left": dict(skipped)})
