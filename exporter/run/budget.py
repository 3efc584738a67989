"""``run --budget MIN``: which latency-model cells fit the run's time, admitted in priority order
(:class:`BudgetPlanner`); what does not fit is reported as not run, and a rerun continues with it."""

from __future__ import annotations

import math
import time
from typing import Any

from ..models.config import Grid
from ..pipeline.manifest import Manifest
from ..pipeline.stages import PRECISION
from ..pipeline.unit import Unit, grid_tag
from .state import LatencyCell


def params(variant: str) -> int:
    from ..models import get_variant, model_cost

    return model_cost(get_variant(variant).config).params


def conversion_rates(manifest: Manifest, models: list[tuple[str, str, tuple[Grid | None, ...]]]) -> dict[str, float]:
    """Seconds per parameter of each precision conversion on the accuracy models (the slowest grid),
    from this run or the recorded one: the prior for converting a larger model."""
    rates: dict[str, float] = {}
    accuracy = {v for role, v, _ in models if role == "accuracy"}
    for stage_id, entry in manifest.entries.items():
        parts = stage_id.split(":")  # precision:<variant>:<grid>:<precision>
        if len(parts) == 4 and parts[0] == PRECISION and parts[1] in accuracy:
            rate = float(entry.get("seconds", 0.0)) / params(parts[1])
            rates[parts[3]] = max(rates.get(parts[3], 0.0), rate)
    return rates


class BudgetPlanner:
    """Decides which latency-model cells fit the run's time budget, in priority order.

    Cells (model, grid, precision, batch) are considered in priority order (first precision,
    smallest batch, grids as the profile lists them); the first that does not fit ends the plan, so
    what runs is always a prefix of that order. A cell costs its calls in the sweep plus the baseline
    calls interleaved with them, and, when its model files (or the baseline's) are not made yet, the
    stages that make them. It fits when the time spent so far, plus the sweep time of the cells
    already admitted, plus its own predicted time stays within the budget.

    Predictions: call time from the analytic MACs at half the measured matmul rate; session loading
    from the weights' size; stage time from the last unit of the same model and kind (making a
    grid's fp32 graph, or converting to a precision). Without a measurement, a grid's first export
    is assumed free (the first grid of a model is tried if any time is left) and a conversion is
    scaled from the accuracy model's by the parameter count (int8 calibration of a 224-px model
    on a CPU is slow, so it is not started on a guess).
    """

    EFFICIENCY_GUESS = 0.5
    LOAD_BYTES_PER_S = 200e6

    def __init__(self, spec: Any, peak: Any, budget: float, t0: float, conversion_rates: dict[str, float]):
        self.spec, self.budget, self.t0 = spec, budget, t0
        self.rates = conversion_rates
        best = (peak.best("cuda") or peak.best("cpu")) if peak is not None else None
        self.flops = (best.gflops if best else 50.0) * 1e9 * self.EFFICIENCY_GUESS
        self.admitted: set[LatencyCell] = set()
        self.sweep_s = self._accuracy_cells_s()  # timed in the same sweep, always
        self.loaded: set[Unit] = set()
        self.stage_s: dict[tuple[str, str], float] = {}  # (model, "grid" or precision) -> seconds
        self.closed = False
        self._why = ""

    def _accuracy_cells_s(self) -> float:
        """The sweep time of the accuracy models' cells (no baseline; each at least the minimum duration)."""
        st = self.spec.settings
        return sum(st.predict_seconds(self._call_s(m.name, g, p, b)) for m in self.spec.models
                   if not m.baseline and not m.is_baseline for g in m.grids for p in self.spec.precisions
                   for b in self.spec.batches)

    def _call_s(self, model: str, grid: Grid | None, precision: str, batch: int) -> float:
        from ..latency.sweep import Cell, cell_macs

        m = self.spec.model(model)
        return 2.0 * (cell_macs(Cell(m.name, m.variant, grid, precision, batch, "ort")) or 0) * batch / self.flops

    def _load_s(self, unit: Unit) -> float:
        return 4 * params(unit.model) / self.LOAD_BYTES_PER_S  # the fp32 size: an upper bound

    @staticmethod
    def kind(unit: Unit, first: bool) -> str:
        return "grid" if first else str(unit.precision)

    def _stage_s(self, unit: Unit, first: bool) -> float:
        kind = self.kind(unit, first)
        if (unit.model, kind) in self.stage_s:
            return self.stage_s[(unit.model, kind)]
        if kind == "grid":
            return 0.0
        return self.rates.get(kind, 0.0) * params(unit.model)

    def admit(self, cell: LatencyCell, todo: list[Unit]) -> bool:
        """Whether ``cell`` fits; ``todo``: the model files it needs that are not made yet."""
        if self.budget == math.inf:
            self.admitted.add(cell)
            return True
        if self.closed:
            return False
        model, grid, precision, batch = cell
        # the latency entry of the model (a variant may also be an accuracy model, without a baseline)
        base = next(m.baseline for m in self.spec.models if m.name == model and m.baseline)
        st = self.spec.settings  # each side timed by count and by time (warm-up, then rounds)
        sweep = st.predict_seconds(self._call_s(model, grid, precision, batch)) + st.predict_seconds(
            self._call_s(base, None, precision, batch))
        units = [Unit(base, None, precision), Unit(model, grid, precision)]
        sweep += sum(self._load_s(u) for u in units if u not in self.loaded)
        sweep += st.extra_loads() * sum(self._load_s(u) for u in units)  # the thread trial's sessions
        made_grids = {u.at(None) for u in self.loaded}
        stages = sum(self._stage_s(u, u.at(None) not in made_grids) for u in todo)
        need = time.perf_counter() - self.t0 + self.sweep_s + stages + sweep
        if need > self.budget:
            self.closed = True
            self._why = (
                f"over the run's time budget ({self.budget / 60:.0f} min; about {need / 60:.1f} min with "
                f"{model} {grid_tag(grid)} {precision} b{batch}): rerun with a larger --budget (finished stages are "
                "kept), or --budget 0 for none"
            )
            return False
        self.admitted.add(cell)
        self.sweep_s += sweep
        self.loaded.update(units)
        return True

    def record(self, unit: Unit, seconds: float, did_work: bool, first: bool) -> None:
        """The time the stages of ``unit`` took (learnt only when they really ran); ``first``: they
        included the export and optimize of its grid."""
        if did_work:
            self.stage_s[(unit.model, self.kind(unit, first))] = seconds

    def reason(self) -> str:
        return self._why
