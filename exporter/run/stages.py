"""The run's stages as steps (the stages are declared in exporter.pipeline.stages): the chain that
makes and checks one model in one precision (export, optimize, precision, check and build for
TensorRT, validate), the accuracy comparison, and the latency sweep, each recorded in the manifest
(``stages.json``: exporter.pipeline.manifest) so a rerun skips what did not change
(docs/architecture.md, The stages). A step that fails is recorded with its reason and the run goes
on; a refused record or a full disk stops it (exit 2)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import UntrustedFile
from ..io import environment_cause
from ..models import grid_label
from ..models.config import Grid
from ..pipeline.artefacts import Artefacts
from ..pipeline.manifest import Manifest, StageError, error_text
from ..pipeline.stages import (
    BUILD,
    CHECK,
    COMPARE,
    EXPORT,
    HOST_STAGES,
    OPTIMIZE,
    PRECISION,
    PROFILE,
    VALIDATE,
    StageKind,
)
from ..pipeline.unit import CellGrid, GridSet, Unit, grid_tag
from ..profiles import Profile
from .options import RunOptions, RunProgress
from .scope import accuracy_grids
from .state import LatencyCell, RunState

ACCURACY_DATA = "digits"  # the labelled data of the accuracy models' comparisons

@dataclass
class Step:
    unit: Unit
    stage: StageKind  # exporter.pipeline.stages
    run: Callable[[], Any]
    extra: tuple[str, ...] = ()  # a build's profile: its stage id names it

    @property
    def label(self) -> str:
        return self.unit.label(self.stage)

    @property
    def stage_id(self) -> str:
        return self.unit.stage_id(self.stage, *self.extra)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
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


def run_step(s: Step, manifest: Manifest, ui: RunProgress, advance: bool = True) -> None:
    ui.step(s.label)
    try:
        with quiet():
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


def builds_here(artefacts: Artefacts) -> bool:
    """Whether this machine builds the profile's engines (full TensorRT on its GPU, or TensorRT-RTX
    ahead of time): ``--prepare-only`` then builds them too."""
    from ..errors import CannotRunHere

    try:
        artefacts.build_target()
    except CannotRunHere:
        return False
    return True


def record_check(
    artefacts: Artefacts, manifest: Manifest, variant: str, grid: CellGrid, precision: str, state: RunState
) -> None:
    prof = artefacts.settings.profile
    assert prof is not None  # a TensorRT profile's chain
    result = check_stage(artefacts, manifest, prof, variant, grid, precision)
    state.checks.append({"model": variant, "grid": Unit(variant, grid).grid_tag.removeprefix("g"),
                         "precision": precision, **result})


def check_stage(
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

    stage_id = Unit(variant, grid, precision).stage_id(CHECK)
    return manifest.stage(stage_id, CHECK, {"profile": prof.name, "target": "tensorrt"}, {"model": graph}, run).result


def chain_steps(
    artefacts: Artefacts, manifest: Manifest, variant: str, grid: CellGrid, precision: str, backend: str,
    opts: RunOptions, state: RunState, prepare_only: bool = False, build: bool = False,
) -> list[Step]:
    """The stages that make and check one model in one precision (export and optimize once per grid).
    Validation feeds what ``lookupvit validate`` feeds by default: the labelled data the model declares
    (the accuracy models' dataset: the inputs their int8/fp8 graphs were calibrated for), else seeded
    random images. ``prepare_only``: the host stages only (exporter.pipeline.stages: the chain of
    ``run --prepare-only`` and of a cluster's prepare task), and the build where ``build`` (this machine
    builds the profile's engines without its GPU)."""
    from ..backends.registry import backend as registered

    p = precision
    unit = Unit(variant, grid, p)
    engines = registered(backend).runs == "engine"
    steps = [  # asked for by every precision; the first one makes them, the others find them
        Step(Unit(variant, grid), EXPORT, partial(artefacts.exported, variant, grid)),
        Step(Unit(variant, grid), OPTIMIZE, partial(artefacts.optimized, variant, grid)),
    ]
    if p != "fp32" or artefacts.for_tensorrt:
        steps.append(Step(unit, PRECISION, partial(artefacts.converted, variant, grid, p)))
    if engines:  # the parser's rules and the fusion estimate first, then the build (which checks too)
        steps.append(Step(unit, CHECK, partial(record_check, artefacts, manifest, variant, grid, p, state)))
        prof = artefacts.settings.profile
        steps.append(Step(unit, BUILD, partial(artefacts.engine, variant, grid, p), (prof.name,) if prof else ()))
    steps.append(Step(unit, VALIDATE,
                      partial(validate_stage, artefacts, manifest, variant, grid, p, backend, opts, state)))
    if prepare_only:
        return [s for s in steps if s.stage in HOST_STAGES or (build and s.stage == BUILD)]
    return steps


def validate_stage(
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
            "model": variant, "grid": grid_tag(grid).removeprefix("g"), "precision": precision, "backend": r.candidate,
            "status": "PASSED" if r.passed else "FAILED", "samples": r.samples,
            "max_rel": first.max_rel if first else None, "cosine": first.cosine if first else None,
            "top1_agreement": first.top1_agreement if first else None,
            "tolerance": first.tolerance if first else None, "file": str(report_path.relative_to(artefacts.root)),
            "data": r.data,
        }
        return row, [report_path] if report_path.is_file() else []

    stage_id = Unit(variant, grid, precision).stage_id(VALIDATE)
    settings = {"precision": precision, "data": data, "iterations": opts.validate_iterations, "backend": backend}
    outcome = manifest.stage(stage_id, VALIDATE, settings, {"model": target}, run)
    state.validation.append(outcome.result)


def compare_step(
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
                grids=grid_label(grid) if isinstance(grid, tuple) else accuracy_grids(prof, variant),
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
                    "grids": grid_label(grid) if isinstance(grid, tuple) else accuracy_grids(prof, variant)}
        outcome = manifest.stage(Unit(variant, grid).stage_id(COMPARE), COMPARE, settings, {"model": fp32}, run)
        state.accuracy.setdefault(variant, []).append(outcome.result)

    return step


def accuracy_points(state: RunState) -> list[Any]:
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


def profile_step(
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
                    inputs[f"{m.name}:{grid_tag(grid)}:{p}"] = path
    for variant, results in state.accuracy.items():
        for r in results:
            if r and r.get("files", {}).get("json"):
                inputs[f"accuracy:{variant}:{r['cells'][0]['grid'] if r['cells'] else ''}"] = manifest.output_path(
                    f"{COMPARE}:{variant}", r["files"]["json"], "result.files.json")
    accuracy = accuracy_points(state)

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

    chosen = sorted(f"{m}:{grid_tag(g)}:{p}:b{b}" for m, g, p, b in admitted)
    settings = {"spec": spec_to_dict(spec), "latency_cells": chosen, "peak_sizes": list(opts.peak_sizes or ())}
    for key in registered(prof.backend).timing_options:  # e.g. OpenVINO's performance hint shapes every timing
        settings[key] = getattr(prof.benchmark, key)
    outcome = manifest.stage(PROFILE, PROFILE, settings, inputs, run)  # one sweep per run: its id is its kind
    path = manifest.output_path(PROFILE, outcome.result["path"], "result.path")
    state.sweep = SweepResult.from_dict(json.loads(path.read_text()))
    state.sweep_path = path
    state.plots = [manifest.output_path(PROFILE, p, f"result.plots[{i}]") for i, p in enumerate(outcome.result["plots"])]
