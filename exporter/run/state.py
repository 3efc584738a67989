"""What a run collects while its stages run, read by the verdict and the report: one typed value
instead of a dictionary passed between modules (docs/architecture.md, The stages).

The rows themselves are the JSON results the stages record in the manifest (``stages.json``), so a
rerun that skips a stage reads back exactly what the first run wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models.config import Grid

if TYPE_CHECKING:
    from ..latency.sweep import SweepResult

LatencyCell = tuple[str, Grid | None, str, int]  # (model, grid, precision, batch)


@dataclass
class RunState:
    budget_s: float  # the latency models' time budget in seconds (inf: none)
    validation: list[dict[str, Any]] = field(default_factory=list)  # one row per validate stage
    accuracy: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # variant -> its compare results
    sweep: SweepResult | None = None
    sweep_path: Path | None = None
    plots: list[Path] = field(default_factory=list)
    over_budget: dict[LatencyCell, str] = field(default_factory=dict)  # cell -> why it was not run
    disk: dict[str, Any] | None = None  # what the run wrote and kept (exporter.run.keep)
    checks: list[dict[str, Any]] = field(default_factory=list)  # TensorRT readiness of each graph built
