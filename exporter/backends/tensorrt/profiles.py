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


MAX_PROFILES = 4096  # TensorRT allows far fewer per engine; a larger list is not a sidecar we wrote


def profile_entries(sidecar: dict[str, Any], engine_name: str) -> tuple[ProfileEntry, ...]:
    """The ``plan.profile_index`` list of an engine's sidecar, checked and typed (data is data);
    ``()`` when the sidecar has none (an engine built before the list was written)."""
    raw = (sidecar.get("plan") or {}).get("profile_index") if isinstance(sidecar.get("plan"), dict) else None
    if raw is None:
        return ()

    def bad(why: str) -> UserError:
        return UserError(f"The sidecar of {engine_name} has an unreadable plan.profile_index: {why}.",
                         "Rebuild the engine (lookupvit build ... --force) so that its sidecar is rewritten.")

    if not isinstance(raw, list) or len(raw) > MAX_PROFILES:
        raise bad(f"expected a list of at most {MAX_PROFILES} entries")
    out = []
    for pos, e in enumerate(raw):
        batch = e.get("batch") if isinstance(e, dict) else None
        if not isinstance(batch, dict) or e.get("index") != pos:
            raise bad(f"entry {pos} is not {{index: {pos}, grid, batch: {{min, opt, max}}}}")
        sizes = [batch.get(k) for k in ("min", "opt", "max")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 1 << 20 for v in sizes):
            raise bad(f"entry {pos} has batch sizes {sizes}")
        g = e.get("grid")
        try:
            grid = tuple(int(x) for x in g.split("x")) if isinstance(g, str) and len(g) <= 32 else None
        except ValueError:
            grid = None
        if g is not None and (grid is None or not all(1 <= x <= 4096 for x in grid)):
            raise bad(f"entry {pos} has grid {g!r}")
        out.append(ProfileEntry(pos, grid, int(batch["min"]), int(batch["opt"]), int(batch["max"])))
    return tuple(out)


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
    def from_sidecar(cls, sidecar: dict[str, Any] | None, engine_name: str) -> ProfileSelector:
        from ...export.metadata import parse_metadata

        side = sidecar or {}
        raw = (side.get("onnx") or {}).get("metadata") if isinstance(side.get("onnx"), dict) else None
        keys = ("grids", "grid_input")
        meta = {k: raw[f"lookupvit.{k}"] for k in keys if isinstance(raw, dict) and f"lookupvit.{k}" in raw}
        parsed = parse_metadata(meta, Path(engine_name)) if meta else None  # validated and bounded
        grid_input = parsed.grid_input.name if parsed is not None and parsed.grid_input is not None else None
        return cls(engine_name, profile_entries(side, engine_name), grid_input)

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
