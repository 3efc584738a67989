"""Small helpers over onnx-graphsurgeon graphs shared by the passes: producers and consumers,
scalar constants, unique names, new nodes, transposes that compose with their producer, and a
symbolic evaluator for shape subgraphs (Shape -> Slice/Gather -> Concat).

ONNX rules relied upon:
- Transpose: ``out.shape[i] = in.shape[perm[i]]``, so ``Transpose(Transpose(x, p1), p2)`` is
  ``Transpose(x, [p1[p2[i]] for i])``.
- Reshape: a ``0`` in the target copies the input dimension (unless ``allowzero=1``), one ``-1`` is
  inferred.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

Dim = int | str  # a known size or a symbol (dim_param, or "<tensor>#<axis>" when unnamed)
FLOAT_TYPES = (np.float16, np.float32, np.float64)


def producer(t: gs.Tensor) -> gs.Node | None:
    return t.inputs[0] if len(t.inputs) else None


def op_is(t: gs.Tensor, op: str) -> gs.Node | None:
    node = producer(t)
    return node if node is not None and node.op == op else None


def rank(t: gs.Tensor) -> int | None:
    return None if t.shape is None else len(t.shape)


def op_counts(graph: gs.Graph) -> dict[str, int]:
    return dict(sorted(Counter(n.op for n in graph.nodes).items()))


def is_output(graph: gs.Graph, t: gs.Tensor) -> bool:
    return any(t is o for o in graph.outputs)


def sole_consumer(graph: gs.Graph, t: gs.Tensor) -> gs.Node | None:
    """The only node reading ``t`` (and ``t`` is no graph output), else None."""
    if len(t.outputs) != 1 or is_output(graph, t):
        return None
    return t.outputs[0]


def scalar(t: gs.Tensor) -> float | None:
    """The value of a one-element floating-point constant, else None."""
    if isinstance(t, gs.Constant):
        values = t.values
        if values.size == 1 and values.dtype.type in FLOAT_TYPES:
            v = float(np.asarray(values).reshape(-1)[0])
            return v if np.isfinite(v) else None
    return None


def const_ints(t: gs.Tensor) -> list[int] | None:
    if isinstance(t, gs.Constant) and np.issubdtype(t.values.dtype, np.integer):
        return [int(v) for v in np.asarray(t.values).reshape(-1)]
    return None


def scale_of(node: gs.Node) -> tuple[gs.Tensor, float] | None:
    """``Mul(x, c)``, ``Mul(c, x)`` or ``Div(x, c)`` with a scalar constant ``c``: (x, factor)."""
    if node.op == "Mul" and len(node.inputs) == 2:
        for i in (0, 1):
            c = scalar(node.inputs[1 - i])
            if c is not None:
                return node.inputs[i], c
    if node.op == "Div" and len(node.inputs) == 2:
        c = scalar(node.inputs[1])
        if c:
            return node.inputs[0], 1.0 / c
    return None


def norm_axis(axis: int, r: int) -> int:
    return axis + r if axis < 0 else axis


class Builder:
    """Adds nodes to ``graph`` with names that do not collide with existing ones."""

    def __init__(self, graph: gs.Graph, prefix: str):
        self.graph = graph
        self.prefix = prefix
        self.taken = set(graph.tensors().keys()) | {n.name for n in graph.nodes}
        self.counter = itertools.count()

    def name(self, hint: str) -> str:
        while True:
            name = f"{self.prefix}/{hint}_{next(self.counter)}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def node(
        self,
        op: str,
        inputs: list[gs.Tensor],
        attrs: dict[str, Any] | None = None,
        out: gs.Tensor | None = None,
        dtype: Any = None,
        shape: list[Dim | None] | None = None,
        domain: str | None = None,
    ) -> gs.Tensor:
        """Append ``op(inputs)``; write into ``out`` if given, else a new variable. Returns the output."""
        if out is None:
            out = gs.Variable(self.name(op.lower() + "_out"), dtype=dtype, shape=shape)
        node = gs.Node(op, self.name(op.lower()), attrs=attrs or {}, inputs=list(inputs), outputs=[out], domain=domain)
        self.graph.nodes.append(node)
        return out

    def const(self, values: np.ndarray, hint: str = "const") -> gs.Constant:
        return gs.Constant(self.name(hint), np.asarray(values))

    def detach(self, t: gs.Tensor) -> None:
        """Make ``t`` free to be the output of a new node: its current producer loses it."""
        for node in list(t.inputs):
            node.outputs = [o for o in node.outputs if o is not t]


def permuted_shape(shape: list | None, perm: list[int]) -> list | None:
    return None if shape is None else [shape[p] for p in perm]


def transpose_perm(node: gs.Node, r: int) -> list[int]:
    """A Transpose node's permutation (the default reverses the axes)."""
    perm = node.attrs.get("perm")
    return [int(p) for p in perm] if perm is not None else list(range(r))[::-1]


def transposed(b: Builder, t: gs.Tensor, perm: list[int]) -> gs.Tensor:
    """``Transpose(t, perm)``, composed with ``t``'s own Transpose producer; ``t``'s source when the
    composition is the identity."""
    src, full = t, list(perm)
    node = op_is(t, "Transpose")
    if node is not None:
        inner = transpose_perm(node, len(perm))
        src, full = node.inputs[0], [inner[p] for p in perm]
    if full == list(range(len(full))):
        return src
    return b.node("Transpose", [src], {"perm": full}, dtype=t.dtype, shape=permuted_shape(src.shape, full))


def same_dim(a: Dim | None, b: Dim | None) -> bool:
    return a is not None and b is not None and a == b


def dims_of(t: gs.Tensor) -> list[Dim] | None:
    """``t``'s shape with unknown sizes replaced by symbols unique to ``t`` and the axis."""
    if t.shape is None:
        return None
    return [d if isinstance(d, int) or (isinstance(d, str) and d and not d.startswith("unk__")) else f"{t.name}#{i}"
            for i, d in enumerate(t.shape)]


def shape_value(t: gs.Tensor, depth: int = 8) -> list[Dim] | None:
    """The value of a 1-D int64 shape tensor as known sizes and symbols, when it can be told
    statically (constants, Shape, Slice, Gather, Concat, Squeeze/Unsqueeze, Cast); else None."""
    ints = const_ints(t)
    if ints is not None:
        known: list[Dim] = list(ints)
        return known
    node = producer(t)
    if node is None or depth == 0:
        return None
    if node.op == "Shape":
        dims = dims_of(node.inputs[0])
        if dims is None:
            return None
        r = len(dims)
        start = node.attrs.get("start", 0)
        end = node.attrs.get("end", r)
        return dims[start:end]
    if node.op in ("Cast", "Identity", "Squeeze", "Unsqueeze"):
        return shape_value(node.inputs[0], depth - 1)
    if node.op == "Concat" and node.attrs.get("axis", 0) in (0, -1):
        parts = [shape_value(i, depth - 1) for i in node.inputs]
        return None if any(p is None for p in parts) else [d for p in parts for d in p]  # type: ignore[union-attr]
    if node.op == "Slice":
        data = shape_value(node.inputs[0], depth - 1)
        starts, ends = const_ints(node.inputs[1]), const_ints(node.inputs[2])
        axes = const_ints(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3].name else [0]
        steps = const_ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4].name else [1]
        if data is None or not starts or not ends or axes not in ([0], [-1]) or steps != [1]:
            return None
        n = len(data)
        s, e = starts[0], ends[0]
        s = max(0, s + n if s < 0 else min(s, n))
        e = max(0, e + n if e < 0 else min(e, n))
        return data[s:e]
    if node.op == "Gather" and node.attrs.get("axis", 0) == 0:
        data, idx = shape_value(node.inputs[0], depth - 1), const_ints(node.inputs[1])
        if data is None or idx is None:
            return None
        return [data[i] for i in idx]
    return None


def reshape_result(node: gs.Node, in_dims: list[Dim] | None) -> list[Dim] | None:
    """The output dims of a Reshape node in the symbols of its input, when they can be told
    (at most one -1, which must stand for the product of input dims that the rest does not use)."""
    target = shape_value(node.inputs[1])
    if target is None or in_dims is None:
        return None
    allowzero = node.attrs.get("allowzero", 0)
    out: list[Dim | None] = []
    for i, d in enumerate(target):
        if d == 0 and not allowzero:
            if i >= len(in_dims):
                return None
            out.append(in_dims[i])
        else:
            out.append(d)
    if out.count(-1) > 1:
        return None
    if -1 in out:
        i = out.index(-1)
        rest = out[:i] + out[i + 1:]
        # -1 at the front standing for the product of the input's leading dims (the tail matches)
        tail = len(rest)
        if i == 0 and tail <= len(in_dims) and rest == in_dims[len(in_dims) - tail:]:
            lead = in_dims[: len(in_dims) - tail]
            out[0] = lead[0] if len(lead) == 1 else ("*".join(map(str, lead)) if lead else 1)
        else:
            return None
    return out  # type: ignore[return-value]
