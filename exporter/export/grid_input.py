"""The ``grid`` input of a dynamic-grid export: its contract, its ``torch.export`` dims, and the
check node that makes a grid outside the allowed set an ONNX Runtime error.

LookupViT (arXiv 2407.12753) chooses the compressed grid at inference: no parameter depends on it.
A dynamic-grid ONNX model keeps that choice: its second input ``grid`` is a float32 tensor of shape
``(gh, gw)`` (video: ``(gt, gh, gw)``) whose SHAPE is the grid; its values are never read. The
resize size is taken from that shape (``Shape -> Resize(sizes)``), so ``torch.export`` traces the one
model code path with a bounded symbolic ``Dim`` per grid axis (docs/dynamic-grid.md).

ONNX has no assert operator and Dim bounds are not enforced by ONNX Runtime, so the export adds a
check in the graph (ONNX ``Gather`` rule: an index outside ``[-n, n-1]`` is an error).

The exporter spreads the grid through shape arithmetic (``Shape -> Squeeze -> Mul -> Concat`` for
the resize sizes and the sequence lengths), a dozen nodes that a one-grid graph holds as constants
and that ONNX Runtime runs on every call. Every tensor computed from the grid's shape alone takes
one of K values (one per allowed grid), so the export evaluates those tensors at each allowed grid
(ONNX's reference evaluator) and replaces their subgraph with a table lookup that is also the check::

    c     = Min(Shape(grid), L + 1)            # (R,) each axis clamped to lookup extent + 1
    key   = ReduceSum(c * radix)               # scalar, one slot per clamped grid
    row   = Gather(row_table, key)             # k for the k-th allowed grid, K otherwise
    t_i   = Gather(values_i, row)              # each grid-only tensor the model reads, per grid;
                                               # row K is out of bounds: the run fails here

Where the grid's values are read or no such tensor exists, the check gates the grid instead
(``ok = Gather([1.0], slot)``, ``grid' = Mul(grid, ok)``, every reader of ``grid`` reading ``grid'``).

The failing nodes' names spell the allowed grids, and ONNX Runtime quotes them in its error. TensorRT
does not bound-check Gather; there each grid is its own optimisation profile with min = opt = max,
so a grid outside the profiles is refused by the engine's shape check (exporter/engine/plan.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch

from ..models.config import Grid, grid_dims

GRID_INPUT_NAME = "grid"
GRID_INPUT_DTYPE = "float32"
AXIS_NAMES = {2: ("grid_h", "grid_w"), 3: ("grid_t", "grid_h", "grid_w")}
CHECK_NODE_PREFIX = "grid_not_allowed__allowed_grids_"


@dataclass(frozen=True)
class GridInput:
    """The contract of a dynamic-grid model's grid input (stored as ``lookupvit.grid_input``)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]  # an int for an axis every allowed grid shares, else its symbolic name

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "dtype": self.dtype, "shape": list(self.shape)})

    def feed(self, grid: Grid):
        """The input value that selects ``grid`` (zeros: only the shape is read)."""
        import numpy as np

        return np.zeros(grid, dtype=np.float32)


def grid_input_for(grids: tuple[Grid, ...]) -> GridInput:
    """The input contract for ``grids``: an axis on which every grid agrees stays static."""
    rank = len(grids[0])
    shape = tuple(
        grids[0][i] if len({g[i] for g in grids}) == 1 else AXIS_NAMES[rank][i] for i in range(rank)
    )
    return GridInput(GRID_INPUT_NAME, GRID_INPUT_DTYPE, shape)


def export_example_and_dims(grids: tuple[Grid, ...]) -> tuple[torch.Tensor, dict[int, torch.export.Dim]]:
    """The example grid tensor and its ``torch.export`` dims, each bounded by the allowed range.

    The example takes each axis's largest size (never 1 on a dynamic axis, since its min < max), so no
    axis is specialised away by the tracer's 0/1 rule."""
    rank = len(grids[0])
    dims: dict[int, torch.export.Dim] = {}
    example = []
    for i in range(rank):
        sizes = {g[i] for g in grids}
        example.append(max(sizes))
        if len(sizes) > 1:
            dims[i] = torch.export.Dim(AXIS_NAMES[rank][i], min=min(sizes), max=max(sizes))
    return torch.zeros(*example), dims


def check_node_name(grids: tuple[Grid, ...]) -> str:
    return CHECK_NODE_PREFIX + "_".join(grid_dims(g) for g in grids)


def add_grid_check(model, grids: tuple[Grid, ...], lookup_grid: Grid) -> None:
    """Insert the allowed-grid check of the module docstring into ``model`` (an onnx ModelProto):
    the grid's shape arithmetic folded into per-grid tables where it can be, else the gated grid."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    name = GRID_INPUT_NAME
    caps = [n + 1 for n in lookup_grid]  # clamp: any axis beyond the lookup extent lands on slot "cap"
    radix = [math.prod(c + 1 for c in caps[i + 1:]) for i in range(len(caps))]
    folded = _grid_only_tensors(model, grids)
    table = np.full(math.prod(c + 1 for c in caps), len(grids) if folded else 1, dtype=np.int64)
    for k, g in enumerate(grids):
        table[sum(s * r for s, r in zip(g, radix))] = k if folded else 0
    consts: dict[str, np.ndarray] = {
        "grid_check_caps": np.array(caps, dtype=np.int64),
        "grid_check_radix": np.array(radix, dtype=np.int64),
        "grid_check_table": table,
    }
    failing = check_node_name(grids)
    nodes = [
        helper.make_node("Shape", [name], ["grid_check_shape"], name="grid_check_shape"),
        helper.make_node("Min", ["grid_check_shape", "grid_check_caps"], ["grid_check_clamped"], name="grid_check_clamp"),
        helper.make_node("Mul", ["grid_check_clamped", "grid_check_radix"], ["grid_check_terms"], name="grid_check_terms"),
        helper.make_node("ReduceSum", ["grid_check_terms"], ["grid_check_key"], keepdims=0, name="grid_check_key"),
        helper.make_node("Gather", ["grid_check_table", "grid_check_key"], ["grid_check_slot"], name="grid_check_slot"),
    ]
    if folded:
        removed, values = folded
        keep = [n for i, n in enumerate(graph.node) if i not in removed]
        del graph.node[:]
        graph.node.extend(keep)
        for i, (tensor, stacked) in enumerate(values.items()):
            table_name = f"grid_table_{i}"
            consts[table_name] = stacked
            nodes.append(helper.make_node("Gather", [table_name, "grid_check_slot"], [tensor],
                                          name=failing if i == 0 else f"{failing}__{i}"))
        _drop_unused(graph, {t for n in graph.node for t in n.input}, set(values))
    else:
        consts["grid_check_one"] = np.array([1.0], dtype=np.float32)
        checked = f"{name}_checked"
        for node in graph.node:  # every reader of the grid reads the checked grid
            node.input[:] = [checked if i == name else i for i in node.input]
        nodes += [
            helper.make_node("Gather", ["grid_check_one", "grid_check_slot"], ["grid_check_ok"], name=failing),
            helper.make_node("Mul", [name, "grid_check_ok"], [checked], name="grid_check_apply"),
        ]
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    for i, node in enumerate(nodes):
        graph.node.insert(i, node)


def _grid_only_tensors(model, grids: tuple[Grid, ...]):
    """The nodes computing from the grid's shape alone and, for each tensor of theirs the rest of
    the graph reads, its value at every allowed grid stacked (K, ...); None when that cannot be
    done (the grid's values are read, a value's shape changes with the grid, nothing to fold)."""
    import numpy as np
    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    constants = {i.name: i for i in graph.initializer}
    const_nodes = {o: n for n in graph.node if n.op_type == "Constant" for o in n.output}
    derived: set[str] = set()
    sub = []
    positions: set[int] = set()
    for pos, n in enumerate(graph.node):  # graph order is topological
        inputs = [i for i in n.input if i]
        if GRID_INPUT_NAME in inputs and (n.op_type != "Shape" or len(inputs) != 1):
            return None  # the grid's values are read: keep the gated grid
        grid_only = (n.op_type == "Shape" and inputs == [GRID_INPUT_NAME]) or (
            inputs and any(i in derived for i in inputs)
            and all(i in derived or i in constants or i in const_nodes for i in inputs))
        if grid_only and n.domain in ("", "ai.onnx") and not any(a.g.node or a.graphs for a in n.attribute):
            derived.update(n.output)
            sub.append(n)
            positions.add(pos)
    readers = {i for p, n in enumerate(graph.node) if p not in positions for i in n.input} | {o.name for o in graph.output}
    frontier = [t for n in sub for t in n.output if t in readers]
    used = {i for n in sub for i in n.input}
    if not frontier or any(constants[i].data_location == 1 for i in used if i in constants):  # 1: EXTERNAL
        return None
    rank = len(grids[0])
    probe = helper.make_model(
        helper.make_graph(
            [const_nodes[i] for i in sorted(used & set(const_nodes))] + sub, "grid_only",
            [helper.make_tensor_value_info(GRID_INPUT_NAME, 1, [None] * rank)],
            [helper.make_empty_tensor_value_info(t) for t in frontier],
            [constants[i] for i in sorted(used & set(constants))],
        ),
        opset_imports=model.opset_import,
    )
    evaluator = ReferenceEvaluator(probe)
    per_grid = [list(evaluator.run(None, {GRID_INPUT_NAME: np.zeros(g, np.float32)})) for g in grids]
    values: dict[str, np.ndarray] = {}
    for i, t in enumerate(frontier):
        arrays = [np.asarray(v[i]) for v in per_grid]
        if len({(a.shape, a.dtype) for a in arrays}) != 1:
            return None
        values[t] = np.stack(arrays)
    return positions, values


def _drop_unused(graph, read: set[str], kept: set[str]) -> None:
    """Initializers and value_info entries no node reads any more (after folding)."""
    outputs = {o for n in graph.node for o in n.output} | kept
    keep_init = [i for i in graph.initializer if i.name in read or i.name in {o.name for o in graph.output}]
    del graph.initializer[:]
    graph.initializer.extend(keep_init)
    keep_info = [v for v in graph.value_info if v.name in outputs]
    del graph.value_info[:]
    graph.value_info.extend(keep_info)


def dynamic_grid_input(model, path=None) -> tuple[str, tuple[Grid, ...]] | None:
    """A dynamic-grid model's grid input name and allowed grids, from its validated metadata (an
    onnx ModelProto, read from ``path`` when known: errors name it), checked against the grids its
    graph serves; None for a model with its grid fixed in the graph."""
    from pathlib import Path

    from ..onnx_io import lookupvit_metadata
    from .metadata import parse_metadata

    meta = lookupvit_metadata(model)
    if not meta.get("grids"):
        return None
    where = Path(path) if path is not None else Path("model.onnx")
    parsed = parse_metadata({k: meta[k] for k in ("grids", "grid_input") if k in meta}, where)
    if parsed.grid_input is None:
        return None
    check_graph_grids(model, parsed.grids, where)
    return parsed.grid_input.name, parsed.grids


def chosen_grids(name: str, served: tuple[Grid, ...], spec: str | None) -> tuple[Grid, ...]:
    """The grids of a dynamic-grid model to run: all it serves (``spec`` None), or those of ``spec``
    (``"2,4"``, ``"3x3"``); a grid it does not serve is refused with the list."""
    from ..errors import UserError
    from ..models.config import grid_label

    if spec is None:
        return served
    by_name = {**{grid_dims(g): g for g in served}, **{grid_label(g): g for g in served}}
    asked = [s.strip().lower() for s in spec.split(",") if s.strip()]
    unknown = [a for a in asked if a not in by_name]
    if not asked or unknown:
        raise UserError(
            f"{name} serves the grids {', '.join(grid_dims(g) for g in served)}; --grids {spec} asks for "
            f"{', '.join(unknown) or 'none'}.",
            "Pick --grids among those, or drop --grids to run them all.",
        )
    return tuple(dict.fromkeys(by_name[a] for a in asked))


def grid_feed(path, grid: Grid | None) -> dict:
    """The extra input that runs the model at ``path`` at ``grid``: ``{name: zeros(grid)}`` for a
    dynamic-grid model (the grid must be one it serves), ``{}`` for a model with its grid fixed."""
    from pathlib import Path

    from ..errors import UserError
    from .metadata import read_model_metadata

    meta = read_model_metadata(path)  # validated and bounded
    if meta.grid_input is None:
        return {}
    name = Path(path).name
    if grid is None or tuple(grid) not in meta.grids:
        raise UserError(
            f"{name} is a dynamic-grid model serving the grids {', '.join(grid_dims(g) for g in meta.grids)}; "
            + ("no grid was chosen." if grid is None else f"grid {grid_dims(grid)} is not among them."),
            "Choose one of those grids (--grids).",
        )
    return {meta.grid_input.name: meta.grid_input.feed(tuple(grid))}


def graph_grids(model, folder=None) -> tuple[Grid, ...] | None:
    """The grids a dynamic-grid graph itself serves, decoded from its check table (module
    docstring: ``grid_check_caps``, ``grid_check_radix``, ``grid_check_table``; an allowed grid's slot
    holds its row ``k``, or 0 in the gated form, every other slot the fill value), else from the name
    of its failing node; None when the graph carries neither (no grid check: not a dynamic-grid graph)."""
    import numpy as np
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer if t.name in ("grid_check_caps", "grid_check_radix",
                                                                      "grid_check_table")}
    if len(inits) == 3:
        try:
            caps, radix, table = (np.asarray(numpy_helper.to_array(inits[n], base_dir=str(folder or "")))
                                  for n in ("grid_check_caps", "grid_check_radix", "grid_check_table"))
        except (OSError, ValueError):
            caps = radix = table = None  # type: ignore[assignment]
        if table is not None and caps.ndim == radix.ndim == table.ndim == 1 and len(caps) == len(radix) in (2, 3) \
                and table.size and table.size <= 1 << 24:
            fill = table.max()
            slots = [int(i) for i in np.flatnonzero(table != fill)]
            slots.sort(key=lambda i: (int(table[i]), i))
            return tuple(tuple(int(slot // int(r)) % (int(c) + 1) for c, r in zip(caps, radix)) for slot in slots)
    for node in model.graph.node:
        if node.name.startswith(CHECK_NODE_PREFIX):
            spec = node.name[len(CHECK_NODE_PREFIX):].split("__")[0]
            try:
                return tuple(tuple(int(x) for x in g.split("x")) for g in spec.split("_") if g)
            except ValueError:
                return None
    return None


def check_graph_grids(model, declared: tuple[Grid, ...], path) -> None:
    """Refuse a dynamic-grid model whose metadata (``lookupvit.grids``) does not name exactly the grids
    its graph serves (:func:`graph_grids`): a backend fed a grid the graph does not serve fails (ONNX
    Runtime) or returns wrong logits (OpenVINO, TensorRT), so this runs before any of them."""
    from pathlib import Path

    from ..errors import UserError

    served = graph_grids(model, Path(path).parent)
    if served is not None and set(served) == set(declared):
        return
    found = "no grid check (it is not a dynamic-grid graph)" if served is None else \
        f"the grids {', '.join(grid_dims(g) for g in served)}"
    raise UserError(
        f"{path} carries invalid metadata: lookupvit.grids = {','.join(grid_dims(g) for g in declared)!r}, but its "
        f"graph serves {found}. The metadata was edited after export; no backend runs this model.",
        "Re-export the model (`lookupvit export VARIANT --dynamic-grid --grids ...`), or restore its metadata.",
    )
