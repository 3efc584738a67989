"""The ``grid`` input of a dynamic-grid export: its contract, its ``torch.export`` dims, and the
check node that makes a grid outside the allowed set an ONNX Runtime error.

LookupViT (arXiv 2407.12753) chooses the compressed grid at inference: no parameter depends on it.
A dynamic-grid ONNX model keeps that choice: its second input ``grid`` is a float32 tensor of shape
``(gh, gw)`` (video: ``(gt, gh, gw)``) whose SHAPE is the grid; its values are never read. The
resize size is taken from that shape (``Shape -> Resize(sizes)``), so ``torch.export`` traces the one
model code path with a bounded symbolic ``Dim`` per grid axis (README, "Dynamic-grid models").

ONNX has no assert operator and Dim bounds are not enforced by ONNX Runtime, so the export adds a
check in the graph (ONNX ``Gather`` rule: an index outside ``[-n, n-1]`` is an error)::

    c     = Min(Shape(grid), L + 1)            # (R,) each axis clamped to lookup extent + 1
    key   = ReduceSum(c * radix)               # scalar, one slot per clamped grid
    slot  = Gather(allowed_table, key)         # 0 for an allowed grid, 1 otherwise
    ok    = Gather([1.0], slot)                # slot 1 is out of bounds: the run fails here
    grid' = Mul(grid, ok)                      # every former reader of `grid` reads grid'

The failing node's name spells the allowed grids, and ONNX Runtime quotes it in its error. TensorRT
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
    """Insert the allowed-grid check of the module docstring into ``model`` (an onnx ModelProto)."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    name = GRID_INPUT_NAME
    caps = [n + 1 for n in lookup_grid]  # clamp: any axis beyond the lookup extent lands on slot "cap"
    radix = [math.prod(c + 1 for c in caps[i + 1:]) for i in range(len(caps))]
    table = np.ones(math.prod(c + 1 for c in caps), dtype=np.int64)
    for g in grids:
        table[sum(s * r for s, r in zip(g, radix))] = 0
    consts: dict[str, np.ndarray] = {
        "grid_check_caps": np.array(caps, dtype=np.int64),
        "grid_check_radix": np.array(radix, dtype=np.int64),
        "grid_check_table": table,
        "grid_check_one": np.array([1.0], dtype=np.float32),
    }
    graph.initializer.extend(numpy_helper.from_array(v, k) for k, v in consts.items())
    checked = f"{name}_checked"
    for node in graph.node:  # every reader of the grid reads the checked grid
        node.input[:] = [checked if i == name else i for i in node.input]
    failing = check_node_name(grids)
    nodes = [
        helper.make_node("Shape", [name], ["grid_check_shape"], name="grid_check_shape"),
        helper.make_node("Min", ["grid_check_shape", "grid_check_caps"], ["grid_check_clamped"], name="grid_check_clamp"),
        helper.make_node("Mul", ["grid_check_clamped", "grid_check_radix"], ["grid_check_terms"], name="grid_check_terms"),
        helper.make_node("ReduceSum", ["grid_check_terms"], ["grid_check_key"], keepdims=0, name="grid_check_key"),
        helper.make_node("Gather", ["grid_check_table", "grid_check_key"], ["grid_check_slot"], name="grid_check_slot"),
        helper.make_node("Gather", ["grid_check_one", "grid_check_slot"], ["grid_check_ok"], name=failing),
        helper.make_node("Mul", [name, "grid_check_ok"], [checked], name="grid_check_apply"),
    ]
    for i, node in enumerate(nodes):
        graph.node.insert(i, node)


def dynamic_grid_input(model) -> tuple[str, tuple[Grid, ...]] | None:
    """A dynamic-grid model's grid input name and allowed grids, from its validated metadata (an
    onnx ModelProto); None for a model with its grid fixed in the graph."""
    from pathlib import Path

    from ..onnx_io import lookupvit_metadata
    from .metadata import parse_metadata

    meta = lookupvit_metadata(model)
    if not meta.get("grids"):
        return None
    parsed = parse_metadata({k: meta[k] for k in ("grids", "grid_input") if k in meta}, Path("model.onnx"))
    return (parsed.grid_input.name, parsed.grids) if parsed.grid_input is not None else None


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
