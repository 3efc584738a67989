"""Which optimisation profile of an engine serves a request: the engine's sidecar lists, per profile,
the grid it is fixed to and its batch range (written by exporter/engine/plan.py's ``BuildPlan``); a
runner selects the profile for each feed (TensorRT's ``IExecutionContext.setOptimizationProfileAsync``,
Polygraphy's ``TrtRunner.set_profile``). Pure Python, so tested on any machine; docs/dynamic-grid.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import UserError
from ...schema.sidecars import EngineSidecar


@dataclass(frozen=True)
class ProfileEntry:
    """One optimisation profile of an engine: the grid it is fixed to (None: a one-grid model) and
    its batch range."""

    index: int
    grid: tuple[int, ...] | None
    batch_min: int
    batch_opt: int
    batch_max: int

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "grid": "x".join(map(str, self.grid)) if self.grid else None,
                "batch": {"min": self.batch_min, "opt": self.batch_opt, "max": self.batch_max}}


def profile_entries(sidecar: EngineSidecar) -> tuple[ProfileEntry, ...]:
    """The ``plan.profile_index`` list of an engine's sidecar (typed by exporter/schema/sidecars.py);
    ``()`` when the sidecar has none (an engine built before the list was written)."""
    return tuple(ProfileEntry(e.index, e.grid_dims, e.batch.min, e.batch.opt, e.batch.max)
                 for e in sidecar.plan.profile_index or ())


def select_profile(entries: tuple[ProfileEntry, ...], batch: int, grid: tuple[int, ...] | None, engine_name: str) -> int:
    """The optimisation profile serving ``batch`` at ``grid`` (None for a one-grid model): among those
    fixed to that grid whose batch range holds it, the one with the smallest opt at or above it, else
    the largest opt. A grid or batch no profile serves is refused, naming the grids served."""
    want = tuple(grid) if grid is not None and any(e.grid for e in entries) else None
    fits = [e for e in entries if e.grid == want and e.batch_min <= batch <= e.batch_max]
    if not fits:
        served = list(dict.fromkeys("x".join(map(str, e.grid)) for e in entries if e.grid))
        ranges = sorted({(e.batch_min, e.batch_max) for e in entries if e.grid == want})
        raise UserError(
            f"No optimisation profile of {engine_name} serves batch {batch}"
            + (f" at grid {'x'.join(map(str, grid))}" if grid else "") + ".",
            (f"Request a grid among {', '.join(served)}" if served else "Request a batch")
            + (f" and a batch within {', '.join(f'{lo}..{hi}' for lo, hi in ranges)}" if ranges else "")
            + ", or rebuild the engine with a profile that covers it.",
        )
    above = [(e.batch_opt, e.index) for e in fits if e.batch_opt >= batch]
    return min(above)[1] if above else max((e.batch_opt, e.index) for e in fits)[1]


@dataclass(frozen=True)
class ProfileSelector:
    """Which optimisation profile an engine's runner selects for a request, from the engine's sidecar
    (its ``plan.profile_index`` list and the model's grid input); pure, so tested on any machine."""

    engine_name: str
    entries: tuple[ProfileEntry, ...]
    grid_input: str | None  # a dynamic-grid engine: the input whose shape is the grid

    @classmethod
    def from_sidecar(cls, sidecar: EngineSidecar | dict[str, Any] | None, engine_name: str) -> ProfileSelector:
        """From an engine's sidecar (typed, or its JSON: validated here); no sidecar: no profiles listed."""
        from ...export.metadata import parse_metadata
        from ...schema.sidecars import engine_sidecar

        side = sidecar if isinstance(sidecar, EngineSidecar) else engine_sidecar(sidecar, f"the sidecar of {engine_name}")
        raw = side.onnx.metadata
        meta = {k: raw[f"lookupvit.{k}"] for k in ("grids", "grid_input") if f"lookupvit.{k}" in raw}
        parsed = parse_metadata(meta, Path(engine_name)) if meta else None  # validated and bounded
        grid_input = parsed.grid_input.name if parsed is not None and parsed.grid_input is not None else None
        return cls(engine_name, profile_entries(side), grid_input)

    def index(self, batch: int, grid: tuple[int, ...] | None = None) -> int | None:
        """The profile for ``batch`` at ``grid``; None when the sidecar lists none (the runner keeps
        TensorRT's default, profile 0)."""
        return select_profile(self.entries, batch, grid, self.engine_name) if self.entries else None

    def for_feed(self, feed: dict[str, Any]) -> int | None:
        """The profile for a runner's feed: the batch is axis 0 of its image input, the grid the
        shape of its grid input."""
        images = next((v for k, v in feed.items() if k != self.grid_input), None)
        if images is None:
            return None
        grid = tuple(int(d) for d in feed[self.grid_input].shape) if self.grid_input in feed else None
        return self.index(int(images.shape[0]), grid)
