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

import datetime as _dt
import math
import time
from pathlib import Path

from ..errors import UntrustedFile
from ..io import environment_cause
from ..pipeline.artefacts import Artefacts, ChainSettings
from ..pipeline.manifest import Manifest, StageError, error_text
from ..pipeline.stages import BUDGET, COMPARE, LATENCY_CELL, PROFILE, VALIDATE
from ..pipeline.unit import Unit
from .budget import BudgetPlanner, conversion_rates
from .options import REPORT_HTML, SUMMARY_JSON, RunOptions, RunProgress
from .prepare import prepare_run
from .scope import backend_of, dynamic_grid_sets, plan_models, sweep_spec
from .stages import Step, chain_steps, compare_step, profile_step, quiet, run_step
from .state import RunState
from .verdict import RunResult, run_verdict


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
    backend = backend_of(prof)
    models = plan_models(prof)
    for variant, grid_set in dynamic_grid_sets(prof, models).items():  # one graph per precision serves its grids
        artefacts.share(variant, grid_set)
    budget = opts.budget_s if opts.budget_s is not None else math.inf  # none unless asked: the profile's scope runs
    state = RunState(budget)
    if opts.prepare_only:
        return prepare_run(prof, out, models, artefacts, manifest, ui, t0, opts)

    accuracy_steps: list[Step] = []
    for role, variant, grids in models:
        if role == "accuracy":
            for grid in dict.fromkeys(artefacts.cell_grid(variant, g) for g in grids):  # a shared graph: once
                for p in prof.precisions:
                    accuracy_steps += chain_steps(artefacts, manifest, variant, grid, p, backend, opts, state)
                accuracy_steps.append(Step(Unit(variant, grid), COMPARE,
                                           compare_step(artefacts, manifest, variant, grid, prof, backend, state)))
    spec = sweep_spec(prof, backend, models, opts.repeats)
    latency = [m for m in spec.models if m.baseline]  # the latency models (each paired with the baseline)
    lat_precisions = list(latency[0].precisions or spec.precisions) if latency else []
    lat_batches = list(latency[0].batches or spec.batches) if latency else []
    n_units = sum(len(m.grids) + 1 for m in latency) * len(lat_precisions)

    ui.start(len(accuracy_steps) + n_units + 3)
    for s in accuracy_steps:
        run_step(s, manifest, ui)
    validated = {s.unit for s in accuracy_steps if s.stage == VALIDATE}  # a variant in both roles

    rough_peak = None
    if budget != math.inf:  # a quick estimate for planning; the sweep measures the peak properly
        ui.step("estimating the matrix-multiply rate for planning")
        rough_peak = measure_peak(resolve_threads(prof.benchmark.threads), sizes=(512, 1024), repeats=3, engines=("torch",))
    ui.done("peak")
    planner = BudgetPlanner(spec, rough_peak, budget, t0, conversion_rates(manifest, models))
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
                        manifest.note(Unit(m.name, grid, p).stage_id(LATENCY_CELL, f"b{batch}"), BUDGET, "not run",
                                      planner.reason())
                        continue
                    for u in todo:
                        ui.step(f"{u.model} {u.grid_tag} {u.precision}")
                        first = u.at(None) not in {x.at(None) for x in made}
                        t_unit = time.perf_counter()
                        ran_before = sum(o.status == "ran" for o in manifest.outcomes)
                        for st in chain_steps(artefacts, manifest, u.model, u.grid, u.precision or "fp32", backend, opts, state):
                            if st.stage == VALIDATE and st.unit in validated:
                                continue  # validated on the accuracy data already: one validation per cell
                            run_step(st, manifest, ui, advance=False)
                        did_work = sum(o.status == "ran" for o in manifest.outcomes) > ran_before
                        planner.record(u, time.perf_counter() - t_unit, did_work, first)
                        made.add(u)
                        ui.done(u.model)
    for _ in range(max(0, n_units - len(made))):
        ui.done("")

    ui.step("profile latency")
    try:
        with quiet():
            profile_step(artefacts, manifest, prof, spec, planner.admitted, opts, state)
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
        manifest.note(PROFILE, PROFILE, "failed", error_text(e))
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
