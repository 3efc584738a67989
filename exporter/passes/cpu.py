"""CPU passes (the ``cpu`` target): shape the graph for ONNX Runtime's CPU execution provider
(docs/architecture.md, How to add a pass; docs/optimize.md, The CPU target).

- ``merge-projections``: MatMuls that read the same activation with constant 2-D weights of the same
  input width (K and V of the lookup tokens; Q, K and V where a model projects them separately) become
  one MatMul against the weights concatenated along the output axis, the bias Adds one Add of the
  concatenated biases, and a ``Split`` on the last axis gives each reader its part back. One larger
  product instead of several small ones: at batch 1 a LookupViT's compressed tokens make products
  too small for the CPU's matrix kernels to reach their peak.
- ``skip-layernorm``: ``LayerNormalization(x + (y + bias))`` where the residual sum ``x + y + bias``
  is also read further on (the next residual) is written as ONNX Runtime's contrib op
  ``SkipLayerNormalization`` (domain ``com.microsoft``) with its optional fourth output
  ``input_skip_bias_sum`` standing for the sum. ONNX Runtime's own SkipLayerNormFusion only fuses an
  Add whose sum feeds the LayerNorm alone (its graph transformer checks the Add has one consumer), so
  in a pre-norm transformer it fuses only the last block's; the contrib op's sum output makes every
  residual fusable. Not in the target's default order: on the development machine the graph with it
  ran slower than ONNX Runtime's own Add + LayerNormalization (docs/optimize.md, The CPU target); run it with
  ``--passes``.

Rules relied upon: ``X @ [W1 | W2] = [X @ W1 | X @ W2]`` (MatMul-13 on the last two axes) and
``Split-13/18`` with the sizes as an input; ONNX Runtime's contrib operator documentation for
``com.microsoft.SkipLayerNormalization`` (inputs input, skip, gamma, beta, bias; outputs output,
mean, inv_std_var, input_skip_bias_sum; input and skip of the same 3-D shape [batch, sequence,
hidden]; gamma/beta/bias 1-D [hidden]). ONNX Runtime fuses Add + Gelu to ``BiasGelu`` and a scalar
Mul on a MatMul to ``FusedMatMul`` itself (its transformer optimisations at the extended level), so
the graph keeps those in the plain forms it recognises. The contrib op runs on ONNX Runtime only: a
``cpu``-target graph is for ONNX Runtime; OpenVINO reads the plain export.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx_graphsurgeon as gs

from .gsutil import Builder, is_output, same_dim, sole_consumer
from .registry import PassContext, PassResult, register_pass

MS_DOMAIN = "com.microsoft"


def _values(c: gs.Constant) -> np.ndarray:
    values = c.values
    return np.asarray(values.load() if hasattr(values, "load") else values)


def _weight(node: gs.Node) -> gs.Constant | None:
    """The constant 2-D weight of ``MatMul(x, W)``, else None."""
    if node.op != "MatMul" or len(node.inputs) != 2 or not isinstance(node.inputs[1], gs.Constant):
        return None
    w = node.inputs[1]
    return w if len(w.shape) == 2 and w.values.dtype.type in (np.float32, np.float16) else None


def _bias_add(graph: gs.Graph, node: gs.Node, width: int) -> tuple[gs.Node, gs.Constant] | None:
    """The ``Add(y, b)`` reading the MatMul output ``y`` alone with a constant ``b`` of shape [width]."""
    y = node.outputs[0]
    add = sole_consumer(graph, y)
    if add is None or add.op != "Add" or len(add.inputs) != 2:
        return None
    other = add.inputs[1] if add.inputs[0] is y else add.inputs[0]
    if not isinstance(other, gs.Constant) or list(other.shape) != [width]:
        return None
    return add, other


@register_pass("merge-projections", "cpu", "MatMuls reading the same tensor (e.g. K and V) as one MatMul + Split",
               targets=("cpu",))
def merge_projections(graph: gs.Graph, ctx: PassContext) -> PassResult:
    b = Builder(graph, "merge")
    groups: dict[int, list[gs.Node]] = defaultdict(list)
    for node in graph.nodes:
        w = _weight(node)
        if w is not None and not isinstance(node.inputs[0], gs.Constant):
            groups[id(node.inputs[0])].append(node)
    merged, widths = 0, []
    opset = graph.opset
    for nodes in groups.values():
        if len(nodes) < 2:
            continue
        by_k: dict[tuple, list[gs.Node]] = defaultdict(list)
        for n in nodes:
            w = n.inputs[1]
            by_k[(int(w.shape[0]), w.values.dtype.str)].append(n)
        for same in by_k.values():
            if len(same) < 2 or any(is_output(graph, n.outputs[0]) for n in same):
                continue
            x = same[0].inputs[0]
            ws = [_values(n.inputs[1]) for n in same]
            sizes = [int(w.shape[1]) for w in ws]
            adds = [_bias_add(graph, n, s) for n, s in zip(same, sizes)]
            dtype = ws[0].dtype
            outs = []
            for n, a in zip(same, adds):
                outs.append(a[0].outputs[0] if a is not None else n.outputs[0])
            lead = list(x.shape[:-1]) if x.shape is not None else None
            total = sum(sizes)
            y = b.node("MatMul", [x, b.const(np.concatenate(ws, axis=1), "qkv_weight")], dtype=dtype,
                       shape=None if lead is None else [*lead, total])
            if any(a is not None for a in adds):
                bias = np.concatenate([_values(a[1]).astype(dtype) if a is not None else np.zeros(s, dtype)
                                       for a, s in zip(adds, sizes)])
                y = b.node("Add", [y, b.const(bias, "qkv_bias")], dtype=dtype, shape=y.shape)
            for t in outs:
                b.detach(t)
            for n, a in zip(same, adds):  # the old MatMul/Add are dead once their outputs are moved
                n.outputs.clear() if a is None else (a[0].outputs.clear(), n.outputs.clear())
            split = b.const(np.array(sizes, dtype=np.int64), "split")
            if opset >= 13:
                node = gs.Node("Split", b.name("split"), attrs={"axis": -1}, inputs=[y, split], outputs=outs)
            else:
                node = gs.Node("Split", b.name("split"), attrs={"axis": -1, "split": sizes}, inputs=[y], outputs=outs)
            graph.nodes.append(node)
            merged += len(same)
            widths.append("+".join(str(s) for s in sizes))
    graph.cleanup()
    if not merged:
        return PassResult(0, "no MatMuls sharing an input")
    return PassResult(merged, f"{merged} MatMuls merged into {len(widths)} ({', '.join(sorted(set(widths)))})",
                      {"groups": len(widths), "widths": widths})


def _same_shape(a: gs.Tensor, c: gs.Tensor) -> bool:
    if a.shape is None or c.shape is None or len(a.shape) != 3 or len(c.shape) != 3:
        return False
    return all(same_dim(p, q) for p, q in zip(a.shape, c.shape))


@register_pass("skip-layernorm", "cpu", "residual Add (+ bias Add) + LayerNormalization to SkipLayerNormalization "
               "(com.microsoft, ONNX Runtime)", targets=("cpu",))
def skip_layernorm(graph: gs.Graph, ctx: PassContext) -> PassResult:
    b = Builder(graph, "skipln")
    done = 0
    for ln in [n for n in graph.nodes if n.op == "LayerNormalization"]:
        if int(ln.attrs.get("axis", -1)) not in (-1, 2) or len([o for o in ln.outputs if o.name]) != 1:
            continue
        s = ln.inputs[0]
        if len(s.inputs) != 1 or s.inputs[0].op != "Add":
            continue
        add = s.inputs[0]
        if len(add.inputs) != 2 or any(isinstance(t, gs.Constant) for t in add.inputs):
            continue
        a, c = add.inputs
        if not _same_shape(a, c):
            continue
        width = a.shape[2]
        if not isinstance(width, int):
            continue
        gamma = ln.inputs[1]
        beta = ln.inputs[2] if len(ln.inputs) > 2 and ln.inputs[2].name else None
        if not isinstance(gamma, gs.Constant) or (beta is not None and not isinstance(beta, gs.Constant)):
            continue
        # a bias Add on one side (its sum read by this Add alone) is folded in as the bias input
        skip, inp, bias = c, a, None
        for side, other in ((c, a), (a, c)):
            inner = side.inputs[0] if len(side.inputs) == 1 else None
            if inner is None or inner.op != "Add" or sole_consumer(graph, side) is not add:
                continue
            k = [t for t in inner.inputs if isinstance(t, gs.Constant)]
            v = [t for t in inner.inputs if not isinstance(t, gs.Constant)]
            if len(k) == 1 and len(v) == 1 and list(k[0].shape) == [width] and _same_shape(v[0], other):
                skip, inp, bias = v[0], other, k[0]
                break
        dtype = s.dtype if s.dtype is not None else np.float32
        if beta is None:
            beta = b.const(np.zeros(width, dtype=dtype), "beta")
        inputs = [inp, skip, gamma, beta] + ([bias] if bias is not None else [])
        y = ln.outputs[0]
        keep_sum = len(s.outputs) > 1 or is_output(graph, s)
        ln.outputs.clear()
        add.outputs.clear()
        outputs = [y]
        if keep_sum:
            outputs += [gs.Variable.empty(), gs.Variable.empty(), s]
        graph.nodes.append(gs.Node("SkipLayerNormalization", b.name("skip_layernorm"),
                                   attrs={"epsilon": float(ln.attrs.get("epsilon", 1e-5))},
                                   inputs=inputs, outputs=outputs, domain=MS_DOMAIN))
        done += 1
    graph.cleanup()
    return PassResult(done, f"{done} SkipLayerNormalization written" if done else "no residual Add + LayerNorm")


__all__ = ["MS_DOMAIN", "merge_projections", "skip_layernorm"]
