"""``run --prepare-only`` and the cluster's graph task: everything that needs no GPU (export,
optimize, convert; for TensorRT profiles, check, and build where this machine builds the profile's
engines ahead of time), written to ``prepared.json`` (docs/architecture.md, Distribution)."""

from __future__ import annotations

import math
import time
from functools import partial
from pathlib import Path
from typing import Any

from ..models.config import Grid
from ..pipeline.artefacts import Artefacts, ChainSettings
from ..pipeline.manifest import Manifest, StageOutcome
from ..pipeline.stages import BUILD
from ..pipeline.unit import CellGrid, Unit, grid_tag
from ..profiles import Profile
from .options import PREPARED_JSON, RunOptions, RunProgress
from .scope import backend_of, dynamic_grid_sets, plan_models
from .stages import Step, builds_here, chain_steps, run_step
from .state import RunState
from .verdict import RunResult, RunVerdict, run_verdict


def prepare_run(
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
    builds = prof.is_tensorrt and builds_here(artefacts)
    ui.start(len(work))
    graphs: list[dict[str, Any]] = []
    state = RunState(math.inf)
    for variant, grid, p in work:
        label = f"{variant} {grid_tag(grid)} {p}"
        ui.step(f"prepare {label}")
        checked = len(state.checks)
        for st in chain_steps(artefacts, manifest, variant, grid, p, backend_of(prof), opts, state, prepare_only=True,
                               build=builds):
            run_step(st, manifest, ui, advance=False)
        path = artefacts.precision_path(variant, grid, p)
        check = state.checks[-1] if len(state.checks) > checked else None
        engine = next((e for e in engine_rows(manifest.outcomes, out) if e["model"] == variant
                       and e["grid"] == grid_tag(grid).removeprefix("g") and e["precision"] == p), None)
        graphs.append({
            "model": variant, "grid": grid_tag(grid).removeprefix("g"), "precision": p,
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
    builds = prof.is_tensorrt and builds_here(artefacts)  # TensorRT-RTX ahead of time: no GPU needed
    for p in precisions:
        for st in chain_steps(artefacts, manifest, variant, grid, p, backend_of(prof), opts, state, prepare_only=True,
                               build=builds):
            run_step(st, manifest, ui)
    for other in (load_profile(path) for path in build_profiles):  # the same graphs, built for each profile
        if other.name == prof.name or not other.is_tensorrt:
            continue
        theirs = Artefacts(out, ChainSettings(optimize=opts.optimize, profile=other), manifest, ui.note)
        for v, grid_set in dynamic_grid_sets(other, plan_models(other)).items():
            theirs.share(v, grid_set)
        if not builds_here(theirs):
            continue
        for p in (p for p in precisions if p in other.precisions):
            run_step(Step(Unit(variant, grid, p), BUILD, partial(theirs.engine, variant, grid, p), (other.name,)),
                      manifest, ui)
    return list(manifest.outcomes)
