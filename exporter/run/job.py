"""``lookupvit run``: the whole pipeline for one deployment profile, resumable, ending in a report.

docs/architecture.md, The stages. For the profile's models (``[models]``: accuracy models at ``grids.accuracy``,
latency models at ``grids.latency`` next to the ``baseline`` ViT) and its precisions:

    export -> optimize -> precision -> build (TensorRT profiles) -> validate    per model, grid, precision
    compare                                                                    per accuracy model and grid
    profile                                                                    one sweep over everything
    report                                                                     DIR/report.html, DIR/summary.json

With ``[models] dynamic_grid = true`` each LookupViT's grids are one cell (:func:`dynamic_grid_sets`,
:meth:`exporter.pipeline.artefacts.Artefacts.share`): its chain runs once per precision, validation and
comparison loop over the grids inside the one graph, and the sweep times each grid from it
(docs/dynamic-grid.md).

Every stage is recorded in ``DIR/stages.json`` (:mod:`exporter.pipeline.manifest`): a rerun skips stages whose
inputs did not change. A stage that fails (a precision a backend cannot run, no TensorRT here) is
reported with its reason and the run goes on; the report says what ran, what was skipped and why.

The accuracy models always run completely, and so do the latency models' cells (the profile's
scope: ``[models] latency_precisions`` and ``latency_batches`` name them; no other cell exists in the
sweep or the report). With ``--budget MIN`` they are admitted in priority order within that time
(:class:`_BudgetPlanner`): what does not fit is reported as not run, and a rerun, skipping what is
done, continues with it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import UntrustedFile, UserError
from ..io import environment_cause
from ..models import grid_label
from ..models.config import Grid
from ..pipeline.artefacts import Artefacts, ChainSettings
from ..pipeline.manifest import Manifest, StageError, StageOutcome, error_text
from ..pipeline.unit import CellGrid, GridSet, Unit
from ..profiles import Profile
from .state import LatencyCell, RunState

SUMMARY_JSON = "summary.json"
REPORT_HTML = "report.html"
ACCURACY_DATA = "digits"  # the labelled data of the accuracy models' comparisons


@dataclass(frozen=True)
class RunOptions:
    profile: str | Path = "cpu"
    out_dir: Path = Path("runs/run")
    optimize: bool | None = None  # None: when exporter.passes is available
    validate_iterations: int | None = None  # batches per validation (None: what `lookupvit validate` takes by default)
    repeats: int | None = None  # interleaved rounds of the latency sweep (None: the profile's benchmark.repeats)
    peak_sizes: tuple[int, ...] | None = None  # matrix sizes of the peak measurement (None: default)
    budget_s: float | None = None  # time budget for the latency models (--budget); None or inf: none
    prepare_only: bool = False  # export, optimize, convert (and check for TensorRT) only: no build, no measurement
    keep: str = "final"  # "final": delete exported graphs once optimised (exporter.run.keep); "all": keep every file


@dataclass
class Step:
    unit: Unit
    stage: str  # export, optimize, precision, build, validate, compare, check
    run: Callable[[], Any]
    extra: tuple[str, ...] = ()  # a build's profile: its stage id names it

    @property
    def label(self) -> str:
        return self.unit.label(self.stage)

    @property
    def stage_id(self) -> str:
        return self.unit.stage_id(self.stage, *self.extra)


@dataclass(frozen=True)
class RunVerdict:
    """What a run's exit status says: 0 everything asked for ran and passed; 1 a verdict FAILED or a
    stage failed; 2 work that could not run here (over the time budget, a backend missing)."""

    failed_verdicts: tuple[str, ...] = ()  # "validate lookupvit_digits g2 int8: FAILED"
    failed_stages: tuple[str, ...] = ()  # "<stage id>: <reason>"
    not_run: tuple[str, ...] = ()  # "<stage id>: <reason>"

    @property
    def exit_code(self) -> int:
        if self.failed_verdicts or self.failed_stages:
            return 1
        return 2 if self.not_run else 0

    @property
    def status(self) -> str:
        return {0: "PASSED", 1: "FAILED", 2: "INCOMPLETE"}[self.exit_code]

    def lines(self, limit: int = 10) -> list[str]:
        out = []
        for title, items in (("FAILED", self.failed_verdicts), ("stage failed", self.failed_stages),
                             ("not run", self.not_run)):
            out += [f"{title}: {x}" for x in items[:limit]]
            if len(items) > limit:
                out.append(f"{title}: ... and {len(items) - limit} more (see stages.json and the report)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "exit_code": self.exit_code, "failed_verdicts": list(self.failed_verdicts),
                "failed_stages": list(self.failed_stages), "not_run": list(self.not_run)}


def run_verdict(outcomes: list[StageOutcome], state: RunState) -> RunVerdict:
    """Every failed verdict, failed stage and stage not run, from the manifest's outcomes."""
    verdicts = [f"validate {v['model']} g{v['grid']} {v['precision']}: FAILED (max rel {v.get('max_rel')})"
                for v in state.validation if v and v.get("status") == "FAILED"]
    for variant, results in state.accuracy.items():
        for r in results:
            for c in (r or {}).get("cells", []):
                if c.get("status") == "FAILED":
                    verdicts.append(f"compare {variant} g{c['grid']} {c['precision']}: FAILED")
    latest: dict[str, StageOutcome] = {}
    for o in outcomes:
        latest[o.id] = o
    failed = tuple(f"{o.id}: {o.note}" for o in latest.values() if o.status == "failed")
    not_run = tuple(f"{o.id}: {o.note}" for o in latest.values() if o.status in ("not run", "unavailable"))
    return RunVerdict(tuple(verdicts), failed, not_run)


@dataclass
class RunResult:
    out_dir: Path
    summary: dict[str, Any]
    report: Path | None
    summary_path: Path
    outcomes: list[StageOutcome] = field(default_factory=list)
    seconds: float = 0.0
    verdict: RunVerdict = field(default_factory=RunVerdict)


class RunProgress:
    """Receives the job's progress: the number of steps up front, then each step's start and end.
    This base class ignores it all; the CLI draws it."""

    def start(self, total: int) -> None:
        pass

    def step(self, label: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def done(self, label: str) -> None:
        pass


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Library warnings (float16 truncation, exporter chatter) and Polygraphy's comparison log stay
    out of the progress display; the results are in the stage records and the report."""
    import logging

    logger = logging.getLogger("Polygraphy")  # where Polygraphy logs once routed to Python logging

    def drop(_record: logging.LogRecord) -> bool:
        return False

    logger.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.removeFilter(drop)


def _backend_of(profile: Profile) -> str:
    """The key of a profile's latency, validation and comparison backend (exporter/backends/registry.py)."""
    from ..backends.registry import backend

    return backend(profile.backend, option=f"profile {profile.name}: backend").key


def plan_models(profile: Profile) -> list[tuple[str, str, tuple[Grid | None, ...]]]:
    """(role, variant, grids) for every model of the profile: accuracy, latency, baseline."""
    m = profile.models
    out: list[tuple[str, str, tuple[Grid | None, ...]]] = []
    seen: set[str] = set()
    for role, runs in (("accuracy", m.accuracy), ("latency", m.latency)):
        for r in runs:
            out.append((role, r.variant, tuple(r.grids) or (None,)))
            seen.add(r.variant)
    if m.baseline is not None and m.baseline.variant not in seen:
        out.append(("baseline", m.baseline.variant, (None,)))
    if not out:
        raise UserError(
            f"Profile {profile.name} lists no models.",
            f"Add a [models] table to {profile.path}, e.g. accuracy = [\"lookupvit_digits\"].",
        )
    return out


def dynamic_grid_sets(profile: Profile, models: list[tuple[str, str, tuple[Grid | None, ...]]]) -> dict[str, GridSet]:
    """With ``[models] dynamic_grid = true``: each LookupViT's grids (over the roles it has) as the set
    its one dynamic-grid graph serves (docs/dynamic-grid.md); {} otherwise."""
    if not profile.models.dynamic_grid:
        return {}
    grids: dict[str, list[Grid]] = {}
    for _, variant, gs in models:
        grids.setdefault(variant, []).extend(g for g in gs if g is not None)
    return {v: GridSet.of(g) for v, g in grids.items() if g}


def run_job(opts: RunOptions, progress: RunProgress | None = None) -> RunResult:
    """Run the pipeline of ``opts.profile`` into ``opts.out_dir`` (see the module docstring)."""
    from ..backends.registry import backend as registered
    from ..latency.peak import measure_peak
    from ..latency.sweep import resolve_threads
    from ..profiles import load_profile

    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    prof = load_profile(opts.profile)
    if not opts.prepare_only:
        registered(prof.backend).preflight(prof, "lookupvit run")  # before anything is written
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    from .keep import finish, snapshot

    before = snapshot(out)
    ui = progress or RunProgress()
    manifest = Manifest(out)
    artefacts = Artefacts(out, ChainSettings(optimize=opts.optimize, profile=prof if prof.is_tensorrt else None),
                          manifest, ui.note)
    backend = _backend_of(prof)
    models = plan_models(prof)
    for variant, grid_set in dynamic_grid_sets(prof, models).items():  # one graph per precision serves its grids
        artefacts.share(variant, grid_set)
    budget = opts.budget_s if opts.budget_s is not None else math.inf  # none unless asked: the profile's scope runs
    state = RunState(budget)
    if opts.prepare_only:
        return _prepare(prof, out, models, artefacts, manifest, ui, t0, opts)

    accuracy_steps: list[Step] = []
    for role, variant, grids in models:
        if role == "accuracy":
            for grid in dict.fromkeys(artefacts.cell_grid(variant, g) for g in grids):  # a shared graph: once
                for p in prof.precisions:
                    accuracy_steps += _chain_steps(artefacts, manifest, variant, grid, p, backend, opts, state)
                accuracy_steps.append(Step(Unit(variant, grid), "compare",
                                           _compare_step(artefacts, manifest, variant, grid, prof, backend, state)))
    spec = sweep_spec(prof, backend, models, opts.repeats)
    latency = [m for m in spec.models if m.baseline]  # the latency models (each paired with the baseline)
    lat_precisions = list(latency[0].precisions or spec.precisions) if latency else []
    lat_batches = list(latency[0].batches or spec.batches) if latency else []
    n_units = sum(len(m.grids) + 1 for m in latency) * len(lat_precisions)

    ui.start(len(accuracy_steps) + n_units + 3)
    for s in accuracy_steps:
        _run_step(s, manifest, ui)
    validated = {s.unit for s in accuracy_steps if s.stage == "validate"}  # a variant in both roles

    rough_peak = None
    if budget != math.inf:  # a quick estimate for planning; the sweep measures the peak properly
        ui.step("estimating the matrix-multiply rate for planning")
        rough_peak = measure_peak(resolve_threads(prof.benchmark.threads), sizes=(512, 1024), repeats=3, engines=("torch",))
    ui.done("peak")
    planner = _BudgetPlanner(spec, rough_peak, budget, t0, _conversion_rates(manifest, models))
    made: set[Unit] = set()
    for p in lat_precisions:  # priority: first precision, smallest batch, grids as the profile lists them
        for batch in lat_batches:
            for m in latency:
                for grid in m.grids:
                    units = [Unit(m.baseline, None, p), Unit(m.name, artefacts.cell_grid(m.name, grid), p)]
                    todo = [u for u in units if u not in made]
                    cell = (m.name, grid, p, batch)
                    if not planner.admit(cell, todo):
                        state.over_budget[cell] = f"over the run's time budget ({budget / 60:.0f} min); a rerun continues"
                        manifest.note(Unit(m.name, grid, p).stage_id("latency", f"b{batch}"), "budget", "not run",
                                      planner.reason())
                        continue
                    for u in todo:
                        ui.step(f"{u.model} {u.grid_tag} {u.precision}")
                        first = u.at(None) not in {x.at(None) for x in made}
                        t_unit = time.perf_counter()
                        ran_before = sum(o.status == "ran" for o in manifest.outcomes)
                        for st in _chain_steps(artefacts, manifest, u.model, u.grid, u.precision or "fp32", backend, opts, state):
                            if st.stage == "validate" and st.unit in validated:
                                continue  # validated on the accuracy data already: one validation per cell
                            _run_step(st, manifest, ui, advance=False)
                        did_work = sum(o.status == "ran" for o in manifest.outcomes) > ran_before
                        planner.record(u, time.perf_counter() - t_unit, did_work, first)
                        made.add(u)
                        ui.done(u.model)
    for _ in range(max(0, n_units - len(made))):
        ui.done("")

    ui.step("profile latency")
    try:
        with _quiet():
            _profile_step(artefacts, manifest, prof, spec, planner.admitted, opts, state)
    except UntrustedFile:
        raise
    except StageError as e:  # recorded by the manifest
        if isinstance(e.__cause__, UntrustedFile):
            raise e.__cause__ from None
        if (env := environment_cause(e.__cause__)) is not None:
            raise env from None
    except Exception as e:
        if (env := environment_cause(e)) is not None:
            raise env from None
        manifest.note("profile", "profile", "failed", error_text(e))
    ui.done("profile latency")

    ui.step("report")
    from .report import build_summary, write_report

    state.disk = finish(out, manifest, opts.keep, before).to_dict()

    seconds = time.perf_counter() - t0
    summary = build_summary(prof, out, manifest.outcomes, state, started, seconds)
    summary_path = out / SUMMARY_JSON
    verdict = run_verdict(manifest.outcomes, state)
    summary["verdict"] = verdict.to_dict()  # the report leads with it
    summary["artefacts"] = measured_files(out, manifest)  # the files its claims were measured on
    report_path = write_report(summary, state, out / REPORT_HTML)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    from ..io import write_json

    write_json(summary_path, summary)
    ui.done("report")
    return RunResult(out, summary, report_path, summary_path, list(manifest.outcomes), summary["seconds"], verdict)


PREPARED_JSON = "prepared.json"


def measured_files(out: Path, manifest: Manifest) -> dict[str, str]:
    """The record ``summary.json`` keeps of the files its claims were measured on: every output of this
    run's stages still on disk (relative path -> sha256). ``pick`` and ``package`` check a file against
    it before trusting a claim about it (docs/security.md, "Claims travel with their bytes")."""
    from ..pipeline.manifest import file_hash

    files: dict[str, str] = {}
    for o in manifest.outcomes:
        for rel in o.outputs:
            p = out / rel
            if p.is_file():
                files[rel] = file_hash(p)
    return dict(sorted(files.items()))


def _prepare(
    prof: Profile, out: Path, models: list[tuple[str, str, tuple[Grid | None, ...]]], artefacts: Artefacts,
    manifest: Manifest, ui: RunProgress, t0: float, opts: RunOptions,
) -> RunResult:
    """``--prepare-only``: every graph the profile builds, exported, optimised and converted here, and
    (TensorRT profiles) checked against the parser's rules and, where this machine builds the profile's
    engines without running them (TensorRT-RTX ahead of time), built: everything that needs no GPU."""
    from ..io import write_json
    from .report import engine_rows

    work = list(dict.fromkeys((variant, artefacts.cell_grid(variant, grid), p) for _, variant, grids in models
                              for grid in grids for p in prof.precisions))
    builds = prof.is_tensorrt and _builds_here(artefacts)
    ui.start(len(work))
    graphs: list[dict[str, Any]] = []
    state = RunState(math.inf)
    for variant, grid, p in work:
        label = f"{variant} {_g(grid)} {p}"
        ui.step(f"prepare {label}")
        checked = len(state.checks)
        for st in _chain_steps(artefacts, manifest, variant, grid, p, _backend_of(prof), opts, state, prepare_only=True,
                               build=builds):
            _run_step(st, manifest, ui, advance=False)
        path = artefacts.precision_path(variant, grid, p)
        check = state.checks[-1] if len(state.checks) > checked else None
        engine = next((e for e in engine_rows(manifest.outcomes, out) if e["model"] == variant
                       and e["grid"] == _g(grid).removeprefix("g") and e["precision"] == p), None)
        graphs.append({
            "model": variant, "grid": _g(grid).removeprefix("g"), "precision": p,
            "path": str(path.relative_to(out)) if path.is_file() else None,
            "bytes": path.stat().st_size if path.is_file() else None,
            "check": check, "engine": engine,
        })
        ui.done(label)
    failed_checks = tuple(f"check {g['model']} g{g['grid']} {g['precision']}: {g['check']['errors']} finding(s) "
                          "TensorRT's parser would refuse" for g in graphs if g["check"] and not g["check"]["passed"])
    base = run_verdict(manifest.outcomes, state)
    verdict = RunVerdict(failed_checks, base.failed_stages, base.not_run)
    seconds = round(time.perf_counter() - t0, 2)
    if not prof.is_tensorrt:
        then = f"lookupvit run --profile {prof.name} -o {out}"
    elif builds:
        then = (f"on a machine with {prof.gpu or 'the profile GPU'} and the same TensorRT: lookupvit run --profile "
                f"{prof.name} -o {out} (reuses these graphs and engines; validates and times them)")
    else:
        then = f"on a machine with {prof.gpu}: lookupvit run --profile {prof.name} -o {out} (reuses these graphs)"
    summary = {
        "kind": "lookupvit-prepared", "profile": {"name": prof.name, "backend": prof.backend, "gpu": prof.gpu},
        "graphs": graphs, "engines": engine_rows(manifest.outcomes, out),
        "builds_here": builds if prof.is_tensorrt else None, "verdict": verdict.to_dict(), "seconds": seconds,
        "next": then,
    }
    path = write_json(out / PREPARED_JSON, summary)
    return RunResult(out, summary, None, path, list(manifest.outcomes), seconds, verdict)


def _builds_here(artefacts: Artefacts) -> bool:
    """Whether this machine builds the profile's engines (full TensorRT on its GPU, or TensorRT-RTX
    ahead of time): ``--prepare-only`` then builds them too."""
    from ..errors import CannotRunHere

    try:
        artefacts.build_target()
    except CannotRunHere:
        return False
    return True


def _record_check(
    artefacts: Artefacts, manifest: Manifest, variant: str, grid: CellGrid, precision: str, state: RunState
) -> None:
    prof = artefacts.settings.profile
    assert prof is not None  # a TensorRT profile's chain
    result = _check_stage(artefacts, manifest, prof, variant, grid, precision)
    state.checks.append({"model": variant, "grid": Unit(variant, grid).grid_tag.removeprefix("g"),
                         "precision": precision, **result})


def _check_stage(
    artefacts: Artefacts, manifest: Manifest, prof: Profile, variant: str, grid: CellGrid, precision: str
) -> Any:
    """TensorRT's parser rules on the graph the profile will build (``lookupvit check``)."""
    from ..check import check_graph

    graph = artefacts.converted(variant, grid, precision)

    def run() -> tuple[Any, list[Path]]:
        report = check_graph(graph, prof)
        fused = [e for e in report.fusion if e.fused]
        return {"passed": report.passed, "errors": len(report.errors), "warnings": len(report.warnings),
                "findings": [f.line() for f in report.errors][:20],
                "attention": {"total": len(report.fusion), "fused": len(fused),
                              "unknown": sum(e.fused is None for e in report.fusion),
                              "not_fused": sorted({r for e in report.fusion if e.fused is False for r in e.reasons})}}, []

    stage_id = Unit(variant, grid, precision).stage_id("check")
    return manifest.stage(stage_id, "check", {"profile": prof.name, "target": "tensorrt"}, {"model": graph}, run).result


def _run_step(s: Step, manifest: Manifest, ui: RunProgress, advance: bool = True) -> None:
    ui.step(s.label)
    try:
        with _quiet():
            s.run()
    except UntrustedFile:  # a refused record stops the run (exit 2): docs/security.md
        raise
    except StageError as e:  # recorded by the manifest; a stage that needs its output is not run
        if isinstance(e.__cause__, UntrustedFile):  # exit 2: stops the run
            raise e.__cause__ from None
        if (env := environment_cause(e.__cause__)) is not None:  # a full disk or unwritable folder: exit 2
            raise env from None
        if e.stage_id != s.stage_id:
            why = "which cannot run here" if e.cannot_run else "which failed"
            manifest.note(s.stage_id, s.stage, "not run", f"needs {e.stage_id}, {why}")
    except Exception as e:  # one failing step never stops the run: it is reported
        if (env := environment_cause(e)) is not None:
            raise env from None
        manifest.note(s.stage_id, s.stage, "failed", error_text(e))
    if advance:
        ui.done(s.label)


def _params(variant: str) -> int:
    from ..models import get_variant, model_cost

    return model_cost(get_variant(variant).config).params


def _conversion_rates(manifest: Manifest, models: list[tuple[str, str, tuple[Grid | None, ...]]]) -> dict[str, float]:
    """Seconds per parameter of each precision conversion on the accuracy models (the slowest grid),
    from this run or the recorded one: the prior for converting a larger model."""
    rates: dict[str, float] = {}
    accuracy = {v for role, v, _ in models if role == "accuracy"}
    for stage_id, entry in manifest.entries.items():
        parts = stage_id.split(":")  # precision:<variant>:<grid>:<precision>
        if len(parts) == 4 and parts[0] == "precision" and parts[1] in accuracy:
            rate = float(entry.get("seconds", 0.0)) / _params(parts[1])
            rates[parts[3]] = max(rates.get(parts[3], 0.0), rate)
    return rates


class _BudgetPlanner:
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
        return 4 * _params(unit.model) / self.LOAD_BYTES_PER_S  # the fp32 size: an upper bound

    @staticmethod
    def kind(unit: Unit, first: bool) -> str:
        return "grid" if first else str(unit.precision)

    def _stage_s(self, unit: Unit, first: bool) -> float:
        kind = self.kind(unit, first)
        if (unit.model, kind) in self.stage_s:
            return self.stage_s[(unit.model, kind)]
        if kind == "grid":
            return 0.0
        return self.rates.get(kind, 0.0) * _params(unit.model)

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
                f"{model} {_g(grid)} {precision} b{batch}): rerun with a larger --budget (finished stages are "
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


def _g(grid: CellGrid) -> str:
    return Unit("", grid).grid_tag


def _chain_steps(
    artefacts: Artefacts, manifest: Manifest, variant: str, grid: CellGrid, precision: str, backend: str,
    opts: RunOptions, state: RunState, prepare_only: bool = False, build: bool = False,
) -> list[Step]:
    """The stages that make and check one model in one precision (export and optimize once per grid).
    Validation feeds what ``lookupvit validate`` feeds by default: the labelled data the model declares
    (the accuracy models' dataset: the inputs their int8/fp8 graphs were calibrated for), else seeded
    random images. ``prepare_only``: stop before validation (the chain of ``run --prepare-only``), and
    before the build unless ``build``."""
    from ..backends.registry import backend as registered

    p = precision
    unit = Unit(variant, grid, p)
    engines = registered(backend).runs == "engine"
    steps = [  # asked for by every precision; the first one makes them, the others find them
        Step(Unit(variant, grid), "export", partial(artefacts.exported, variant, grid)),
        Step(Unit(variant, grid), "optimize", partial(artefacts.optimized, variant, grid)),
    ]
    if p != "fp32" or artefacts.for_tensorrt:
        steps.append(Step(unit, "precision", partial(artefacts.converted, variant, grid, p)))
    if engines:  # the parser's rules and the fusion estimate first, then the build (which checks too)
        steps.append(Step(unit, "check", partial(_record_check, artefacts, manifest, variant, grid, p, state)))
    if engines and (build or not prepare_only):
        prof = artefacts.settings.profile
        steps.append(Step(unit, "build", partial(artefacts.engine, variant, grid, p), (prof.name,) if prof else ()))
    if prepare_only:
        return steps
    steps.append(Step(unit, "validate",
                      partial(_validate, artefacts, manifest, variant, grid, p, backend, opts, state)))
    return steps


def _validate(
    artefacts: Artefacts, manifest: Manifest, variant: str, grid: CellGrid, precision: str, backend: str,
    opts: RunOptions, state: RunState,
) -> None:
    """The model as the backend runs it, against the PyTorch fp32 reference, on the data
    ``lookupvit validate`` would feed it (exporter.validate.validate, ``auto``)."""
    from ..backends.registry import backend as registered
    from ..validate import validate_model
    from ..validate.validate import resolve_data

    data = resolve_data("auto", artefacts.converted(variant, grid, precision))
    if registered(backend).runs == "engine":
        target = artefacts.engine(variant, grid, precision)
    else:  # the graph the chain wrote for ONNX Runtime, on ONNX Runtime or OpenVINO
        target = artefacts.converted(variant, grid, precision)
    report_path = target.with_name(target.name.removesuffix(".onnx") + ".validate.json")

    def validate() -> Any:
        return validate_model(target, data=data, iterations=opts.validate_iterations, precision=precision,
                              backend=backend, out=report_path)

    def run() -> tuple[Any, list[Path]]:
        r = validate()
        first = r.outputs[0] if r.outputs else None
        row = {
            "model": variant, "grid": _g(grid).removeprefix("g"), "precision": precision, "backend": r.candidate,
            "status": "PASSED" if r.passed else "FAILED", "samples": r.samples,
            "max_rel": first.max_rel if first else None, "cosine": first.cosine if first else None,
            "top1_agreement": first.top1_agreement if first else None,
            "tolerance": first.tolerance if first else None, "file": str(report_path.relative_to(artefacts.root)),
            "data": r.data,
        }
        return row, [report_path] if report_path.is_file() else []

    stage_id = Unit(variant, grid, precision).stage_id("validate")
    settings = {"precision": precision, "data": data, "iterations": opts.validate_iterations, "backend": backend}
    outcome = manifest.stage(stage_id, "validate", settings, {"model": target}, run)
    state.validation.append(outcome.result)


def _compare_step(
    artefacts: Artefacts, manifest: Manifest, variant: str, grid: CellGrid, prof: Profile, backend: str,
    state: RunState,
) -> Callable[[], None]:
    def step() -> None:
        from ..compare import compare_precisions
        from ..precision import DEFAULT_CALIB_SIZE

        fp32 = artefacts.optimized(variant, grid)
        folder = artefacts.folder(variant, grid)

        def run() -> tuple[Any, list[Path]]:
            shared = isinstance(grid, GridSet)  # compared at each of its grids from its one set of graphs
            r = compare_precisions(  # through the run's own pipeline: the very files the chain made
                str(fp32) if shared else variant, precisions=list(prof.precisions),
                grids=grid_label(grid) if isinstance(grid, tuple) else _accuracy_grids(prof, variant),
                data=ACCURACY_DATA, backend=backend, out_dir=folder, calib=artefacts.settings.calib,
                calib_size=artefacts.settings.calib_size or DEFAULT_CALIB_SIZE,
                profile=prof, progress=artefacts.say, artefacts=artefacts,
            )
            d = r.to_dict()
            keep = ("grid", "precision", "status", "reason", "top1", "top1_delta", "agreement", "max_rel", "cosine", "samples")
            result = {
                "model": variant, "backend": d.get("backend"), "data": d.get("data"), "reference": d.get("reference"),
                "cells": [{k: c.get(k) for k in keep} for c in d.get("cells", [])],
                "files": {k: str(Path(v).relative_to(artefacts.root)) for k, v in d.get("files", {}).items()},
            }
            files = [Path(v) for v in d.get("files", {}).values() if Path(v).is_file()]
            return result, files

        settings = {"precisions": list(prof.precisions), "data": ACCURACY_DATA, "backend": backend,
                    "calib": artefacts.settings.calib, "calib_size": artefacts.settings.calib_size or DEFAULT_CALIB_SIZE,
                    "grids": grid_label(grid) if isinstance(grid, tuple) else _accuracy_grids(prof, variant)}
        outcome = manifest.stage(Unit(variant, grid).stage_id("compare"), "compare", settings, {"model": fp32}, run)
        state.accuracy.setdefault(variant, []).append(outcome.result)

    return step


def _accuracy_grids(prof: Profile, variant: str) -> str | None:
    """The accuracy grids of ``variant`` (``2,4``): what a comparison on its dynamic-grid graph covers
    when the graph also serves latency-only grids."""
    grids = [g for role, v, gs in plan_models(prof) if role == "accuracy" and v == variant for g in gs if g]
    return ",".join(grid_label(g) for g in grids) or None


def sweep_spec(prof: Profile, backend: str, models: list[tuple[str, str, tuple[Grid | None, ...]]],
               repeats: int | None = None) -> Any:
    """The profile's latency sweep: every model at its grids x the profile's precisions x batches."""
    from ..latency.sweep import SweepModel, SweepSettings, SweepSpec

    base = prof.models.baseline.variant if prof.models.baseline else None
    entries = []
    scope = prof.models
    for role, variant, grids in models:
        if role == "baseline":
            entries.append(SweepModel(variant, variant, (None,), is_baseline=True))
        elif role == "latency":  # the profile's scope for its latency models: only those cells exist
            precisions = tuple(p for p in prof.precisions if p in (scope.latency_precisions or prof.precisions))
            batches = tuple(b for b in prof.batch_sizes if b in (scope.latency_batches or prof.batch_sizes))
            entries.append(SweepModel(variant, variant, grids, base, precisions=precisions, batches=batches))
        else:
            entries.append(SweepModel(variant, variant, grids, None))
    b = prof.benchmark
    settings = SweepSettings(warmup=b.warmup, iterations=b.iterations, seconds=b.seconds, repeats=repeats or b.repeats,
                             threads=b.threads, warmup_seconds=b.warmup_seconds, noise_threshold=b.noise_threshold,
                             retries=b.retries, pace_wait=b.pace_wait)
    return SweepSpec(tuple(entries), tuple(prof.precisions), tuple(prof.batch_sizes), (backend,), settings)


def _accuracy_points(state: RunState) -> list[Any]:
    from ..latency.plots import AccuracyPoint

    points = []
    for variant, results in state.accuracy.items():
        for r in results:
            if not r:
                continue
            for c in r["cells"]:
                if c.get("top1") is not None:
                    points.append(AccuracyPoint(variant, str(c["grid"]), str(c["precision"]), float(c["top1"]),
                                                f"compare ({r.get('backend')})", c.get("samples")))
    return points


def _profile_step(
    artefacts: Artefacts, manifest: Manifest, prof: Profile, spec: Any,
    admitted: set[LatencyCell], opts: RunOptions, state: RunState,
) -> None:
    """The sweep over every accuracy-model cell and the admitted latency-model cells."""
    import json

    from ..backends.registry import backend as registered
    from ..latency.api import LATENCY_JSON, ProfileRequest, make_timer_factory, write_sweep
    from ..latency.sweep import Cell, SweepResult, resolve_threads, run_sweep, spec_to_dict
    from ..latency.timers import NotRun, Timer

    pairs = {m.name: m.baseline for m in spec.models if m.baseline}
    over = state.over_budget

    def wanted(model: str, grid: Grid | None, precision: str, batch: int) -> bool:
        if model in pairs:
            return (model, grid, precision, batch) in admitted
        if any(m.is_baseline and m.name == model for m in spec.models):  # timed only next to a latency model
            return any(pairs.get(c[0]) == model and c[2:] == (precision, batch) for c in admitted)
        return True  # accuracy models: every cell

    inputs: dict[str, Path] = {}
    for m in spec.models:
        for grid in m.grids:
            for p in spec.precisions:
                path = artefacts.precision_path(m.name, grid, p)
                if any(wanted(m.name, grid, p, b) for b in spec.batches) and path.is_file():
                    inputs[f"{m.name}:{_g(grid)}:{p}"] = path
    for variant, results in state.accuracy.items():
        for r in results:
            if r and r.get("files", {}).get("json"):
                inputs[f"accuracy:{variant}:{r['cells'][0]['grid'] if r['cells'] else ''}"] = manifest.output_path(
                    f"compare:{variant}", r["files"]["json"], "result.files.json")
    accuracy = _accuracy_points(state)

    def run() -> tuple[Any, list[Path]]:
        req = ProfileRequest(targets=[], settings=spec.settings, optimize=opts.optimize, profile=prof)
        make = make_timer_factory(req, artefacts, resolve_threads(spec.settings.threads))

        def factory(cell: Cell) -> Timer:
            if not wanted(cell.model, cell.grid, cell.precision, cell.batch):
                why = over.get((cell.model, cell.grid, cell.precision, cell.batch))
                raise NotRun(why or "no latency-model cell of this precision and batch is measured in this run")
            return make(cell)

        result = run_sweep(spec, factory, progress=artefacts.say, measure_peak_sizes=opts.peak_sizes)
        path, plots = write_sweep(result, artefacts.root, accuracy)
        return {"path": LATENCY_JSON, "plots": [str(p.relative_to(artefacts.root)) for p in plots]}, [path, *plots]

    chosen = sorted(f"{m}:{_g(g)}:{p}:b{b}" for m, g, p, b in admitted)
    settings = {"spec": spec_to_dict(spec), "latency_cells": chosen, "peak_sizes": list(opts.peak_sizes or ())}
    for key in registered(prof.backend).timing_options:  # e.g. OpenVINO's performance hint shapes every timing
        settings[key] = getattr(prof.benchmark, key)
    outcome = manifest.stage("profile", "profile", settings, inputs, run)
    path = manifest.output_path("profile", outcome.result["path"], "result.path")
    state.sweep = SweepResult.from_dict(json.loads(path.read_text()))
    state.sweep_path = path
    state.plots = [manifest.output_path("profile", p, f"result.plots[{i}]") for i, p in enumerate(outcome.result["plots"])]


def prepare_graph(
    opts: RunOptions, variant: str, grid: CellGrid, precisions: tuple[str, ...], progress: RunProgress | None = None,
    build_profiles: tuple[Path, ...] = (),
) -> list[StageOutcome]:
    """Export, optimise and convert one model at one grid into each of ``precisions`` (and, on a
    TensorRT profile, check it, and build its engines where this node builds them without a GPU:
    TensorRT-RTX ahead of time) in ``opts.out_dir``, through the run's own chain (``prepare_only``),
    with the settings ``run_job`` uses: the GPU-independent unit a cluster schedules on any node
    (docs/architecture.md, Distribution). ``build_profiles``: the other TensorRT profiles sharing these
    graphs, whose engines are built here too where this node builds them. Returns the manifest's outcomes."""
    from ..profiles import load_profile

    prof = load_profile(opts.profile)
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ui = progress or RunProgress()
    manifest = Manifest(out)
    artefacts = Artefacts(out, ChainSettings(optimize=opts.optimize, profile=prof if prof.is_tensorrt else None),
                          manifest, ui.note)
    for v, grid_set in dynamic_grid_sets(prof, plan_models(prof)).items():  # as run_job serves them
        artefacts.share(v, grid_set)
    state = RunState(math.inf)
    builds = prof.is_tensorrt and _builds_here(artefacts)  # TensorRT-RTX ahead of time: no GPU needed
    for p in precisions:
        for st in _chain_steps(artefacts, manifest, variant, grid, p, _backend_of(prof), opts, state, prepare_only=True,
                               build=builds):
            _run_step(st, manifest, ui)
    for other in (load_profile(path) for path in build_profiles):  # the same graphs, built for each profile
        if other.name == prof.name or not other.is_tensorrt:
            continue
        theirs = Artefacts(out, ChainSettings(optimize=opts.optimize, profile=other), manifest, ui.note)
        for v, grid_set in dynamic_grid_sets(other, plan_models(other)).items():
            theirs.share(v, grid_set)
        if not _builds_here(theirs):
            continue
        for p in (p for p in precisions if p in other.precisions):
            _run_step(Step(Unit(variant, grid, p), "build", partial(theirs.engine, variant, grid, p), (other.name,)),
                      manifest, ui)
    return list(manifest.outcomes)
