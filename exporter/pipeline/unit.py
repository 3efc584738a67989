"""The unit of work: one cell of the pipeline, as a frozen value (docs/architecture.md, The unit of
work and the one stage chain).

A cell is a model (a registered variant, or the stem of a given ONNX file), a compressed grid (None
for a ViT) and a precision. Its stage ids (the manifest's keys), its folder in a layout and its
labels are spelled here and nowhere else, so no code assembles or parses them from strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models.config import Grid, grid_label


@dataclass(frozen=True)
class Unit:
    model: str
    grid: Grid | None = None
    precision: str | None = None  # None: a stage that does not depend on it (export, optimize, compare)

    @property
    def grid_tag(self) -> str:
        """``g7``, ``g4x7x7``; ``-`` for a ViT."""
        return f"g{grid_label(self.grid)}" if self.grid else "-"

    def stage_id(self, stage: str, *extra: str) -> str:
        """The manifest's key: ``precision:lookupvit_digits:g2:int8``, ``export:vit_b16:-``."""
        parts = [stage, self.model, self.grid_tag, *([self.precision] if self.precision else []), *extra]
        return ":".join(parts)

    def label(self, stage: str) -> str:
        """What progress lines show: ``precision lookupvit_digits g2 int8``."""
        return " ".join([stage, self.model, self.grid_tag, *([self.precision] if self.precision else [])])

    def folder(self, root: Path) -> Path:
        """``ROOT/<model>/g<grid>`` (``ROOT/<model>`` for a ViT)."""
        return root / self.model / self.grid_tag if self.grid else root / self.model

    def at(self, precision: str | None) -> Unit:
        return Unit(self.model, self.grid, precision)
