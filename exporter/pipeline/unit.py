"""The unit of work: one cell of the pipeline, as a frozen value (docs/architecture.md, The unit of
work and the one stage chain).

A cell is a model (a registered variant, or the stem of a given ONNX file), a compressed grid (None
for a ViT; a :class:`GridSet` for a dynamic-grid graph, which serves several grids chosen per call
by the shape of its grid input: docs/dynamic-grid.md) and a precision. Its stage ids (the
manifest's keys), its folder in a layout and its labels are spelled here and nowhere else, so no
code assembles or parses them from strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..models.config import Grid, grid_dims, grid_label
from .stages import StageKind

DYNAMIC_TAG = "gdynamic"
MAX_STAGE_ID = 256  # the longest key stages.json holds (exporter/schema/run_folder.py, StagesDoc)


@dataclass(frozen=True)
class GridSet:
    """The grids one dynamic-grid graph serves (sorted, distinct); its cells share that graph."""

    grids: tuple[Grid, ...]

    @classmethod
    def of(cls, grids: tuple[Grid | None, ...] | list[Grid]) -> GridSet:
        return cls(tuple(sorted({g for g in grids if g is not None})))

    def __contains__(self, grid: object) -> bool:
        return grid in self.grids

    @property
    def text(self) -> str:
        """``1,2,3`` (as ``--grids`` spells them)."""
        return ",".join(grid_label(g) for g in self.grids)

    @property
    def dims(self) -> str:
        """``1x1, 2x2, 3x3`` (messages)."""
        return ", ".join(grid_dims(g) for g in self.grids)


CellGrid = Grid | GridSet | None  # what a cell is made for: one grid, a dynamic-grid graph's set, or none (a ViT)


@dataclass(frozen=True)
class Unit:
    model: str
    grid: CellGrid = None
    precision: str | None = None  # None: a stage that does not depend on it (export, optimize, compare)

    @property
    def grid_tag(self) -> str:
        """``g7``, ``g4x7x7``, ``gdynamic`` (a dynamic-grid graph); ``-`` for a ViT."""
        if isinstance(self.grid, GridSet):
            return DYNAMIC_TAG
        return f"g{grid_label(self.grid)}" if self.grid else "-"

    def stage_id(self, stage: StageKind | Literal["latency"], *extra: str) -> str:
        """The manifest's key: ``precision:lookupvit_digits:g2:int8``, ``export:vit_b16:-`` (``latency``:
        a latency-model cell's budget outcome, :data:`exporter.pipeline.stages.LATENCY_CELL`)."""
        parts = [stage, self.model, self.grid_tag, *([self.precision] if self.precision else []), *extra]
        return ":".join(parts)

    def label(self, stage: StageKind) -> str:
        """What progress lines show: ``precision lookupvit_digits g2 int8``."""
        return " ".join([stage, self.model, self.grid_tag, *([self.precision] if self.precision else [])])

    def folder(self, root: Path) -> Path:
        """``ROOT/<model>/g<grid>`` (``ROOT/<model>/gdynamic``, ``ROOT/<model>`` for a ViT); the model name
        is one path component (exporter.safe_paths.single_component)."""
        from ..safe_paths import single_component

        single_component(self.model, "The model name")
        return root / self.model / self.grid_tag if self.grid else root / self.model

    def at(self, precision: str | None) -> Unit:
        return Unit(self.model, self.grid, precision)


def grid_tag(grid: CellGrid) -> str:
    """The tag of a cell's grid (:attr:`Unit.grid_tag`): ``g7``, ``gdynamic``, ``-``."""
    return Unit("", grid).grid_tag


def file_stage_id(stage: StageKind, root: Path, output: Path) -> str:
    """The manifest's key of a stage that makes one named file rather than a cell's (a standalone verb's
    one-stage chain, or an engine of a file the user gave): ``precision:m.fp16.onnx``, the output's
    path relative to the manifest's folder ``root`` (exporter.pipeline.steps)."""
    import hashlib

    try:
        rel = Path(output).resolve().relative_to(Path(root).resolve())
    except ValueError:
        raise ValueError(f"{output} is not inside {root}") from None
    sid = f"{stage}:{rel.as_posix()}"
    if len(sid) <= MAX_STAGE_ID:
        return sid
    digest = hashlib.sha256(sid.encode()).hexdigest()[:16]  # a long path: its head, then a digest of the whole
    return f"{sid[:MAX_STAGE_ID - 17]}~{digest}"
