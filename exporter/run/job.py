"""``lookupvit run``: the whole pipeline for one deployment profile, resumable, ending in a report.

DESIGN section 2. For the profile's models (``[models]``: accuracy models at ``grids.accuracy``,
latency models at ``grids.latency`` next to the ``baseline`` ViT) and its precisions:

    export -> optimize -> precision -> build (TensorRT profiles) -> validate    per model, grid, precision
    compare                                                                    per accuracy model and grid
    profile                                                                    one sweep over everything
    report                                                                     DIR/report.html, DIR/summary.json

Every stage is recorded in ``DIR/stages.json`` (:mod:`.manifest`): a rerun skips stages whose
inputs did not change. A stage that fails (a precision a backend cannot run, no TensorRT here) is
reported with its reason and the run goes on; the report says what ran, what was skipped and why.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..models.config import Grid
from .artefacts import Artefacts, ChainSettings
from .manifest import Manifest, StageError, StageOutcome, error_text

SUMMARY_JSON = "summary.json"
REPORT_HTML = "report.html"


@dataclass(frozen=True)
class RunOptions:
    profile: str | Path = "cpu"
    out_dir: Path = Path("runs/run")
    optimize: bool | None = None  # None: when exporter.passes is available
    validate_iterations: int = 2  # random batches per validation
    repeats: int = 5  # interleaved rounds of the latency sweep
    peak_sizes: tuple[int, ...] | None = None  # matrix sizes of the peak measurement (None: default)


@dataclass
class Step:
    label: str
    run: Callable[[], Any]


@dataclass
class RunResult:
    out_dir: Path
    summary: dict[str, Any]
    report: Path
    summary_path: Path
    outcomes: list[StageOutcome] = field(default_factory=list)
    seconds: float = 0.0


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


def _backend_of(profile: Any) -> str:
    return "trt" if profile.is_tensorrt else "ort"


def plan_models(profile: Any) -> list[tuple[str, str, tuple[Grid | None, ...]]]:
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


def run_job(opts: RunOptions, progress: RunProgress | None = None) -> RunResult:
    """Run the pipeline of ``opts.profile`` into ``opts.out_dir`` (see the module docstring)."""
    from ..engine.profiles import load_profile

    t0 = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    prof = load_profile(opts.profile)
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ui = progress or RunProgress()
    manifest = Manifest(out)
    artefacts = Artefacts(out, ChainSettings(optimize=opts.optimize, profile=prof if prof.is_tensorrt else None),
                          manifest, ui.note)
    backend = _backend_of(prof)
    models = plan_models(prof)
    state: dict[str, Any] = {"validation": [], "accuracy": {}, "sweep": None, "sweep_path": None, "plots": []}

    steps: list[Step] = []
    for role, variant, grids in models:
        for grid in grids:
            steps += _chain_steps(artefacts, manifest, role, variant, grid, prof, backend, opts, state)
            if role == "accuracy":
                steps.append(Step(f"compare {variant} {_g(grid)}", _compare_step(artefacts, manifest, variant, grid, prof, backend, state)))
    steps.append(Step("profile latency", lambda: _profile_step(artefacts, manifest, prof, backend, models, opts, state)))

    ui.start(len(steps) + 1)
    for s in steps:
        ui.step(s.label)
        try:
            with _quiet():
                s.run()
        except StageError as e:  # recorded by the manifest; a stage that needs its output is not run
            if e.stage_id != _stage_id(s.label):
                manifest.note(_stage_id(s.label), s.label.split()[0], "not run", f"needs {e.stage_id}, which failed")
        except Exception as e:  # one failing step never stops the run: it is reported
            manifest.note(_stage_id(s.label), s.label.split()[0], "failed", error_text(e))
        ui.done(s.label)

    ui.step("report")
    from .report import build_summary, write_report

    seconds = time.perf_counter() - t0
    summary = build_summary(prof, out, manifest.outcomes, state, started, seconds)
    summary_path = out / SUMMARY_JSON
    report_path = write_report(summary, state, out / REPORT_HTML)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    from ..io import write_json

    write_json(summary_path, summary)
    ui.done("report")
    return RunResult(out, summary, report_path, summary_path, list(manifest.outcomes), summary["seconds"])


def _g(grid: Grid | None) -> str:
    from ..models import grid_label

    return f"g{grid_label(grid)}" if grid else "-"


def _stage_id(label: str) -> str:
    return ":".join(label.split())


def _chain_steps(
    artefacts: Artefacts, manifest: Manifest, role: str, variant: str, grid: Grid | None, prof: Any, backend: str,
    opts: RunOptions, state: dict[str, Any],
) -> list[Step]:
    g = _g(grid)
    steps = [
        Step(f"export {variant} {g}", partial(artefacts.exported, variant, grid)),
        Step(f"optimize {variant} {g}", partial(artefacts.optimized, variant, grid)),
    ]
    for p in prof.precisions:
        if p != "fp32":
            steps.append(Step(f"precision {variant} {g} {p}", partial(artefacts.converted, variant, grid, p)))
        if backend == "trt":
            steps.append(Step(f"build {variant} {g} {p}", partial(artefacts.engine, variant, grid, p)))
        steps.append(Step(f"validate {variant} {g} {p}",
                          partial(_validate, artefacts, manifest, variant, grid, p, backend, opts, state)))
    return steps


def _validate(
    artefacts: Artefacts, manifest: Manifest, variant: str, grid: Grid | None, precision: str, backend: str,
    opts: RunOptions, state: dict[str, Any],
) -> None:
    """The model as the backend runs it, against the PyTorch fp32 reference (random inputs)."""
    if backend == "trt":
        from ..engine.validate import validate_engine

        target = artefacts.engine(variant, grid, precision)
        report_path = target.with_name(target.name.removesuffix(".plan") + ".validate.json")

        def validate() -> Any:
            return validate_engine(target, None, None, None, "random", opts.validate_iterations, precision)
    else:
        from ..validate import validate_onnx

        target = artefacts.converted(variant, grid, precision)
        report_path = target.with_suffix(".validate.json")

        def validate() -> Any:
            return validate_onnx(target, data="random", iterations=opts.validate_iterations, precision=precision)

    def run() -> tuple[Any, list[Path]]:
        r = validate()
        first = r.outputs[0] if r.outputs else None
        row = {
            "model": variant, "grid": _g(grid).removeprefix("g"), "precision": precision, "backend": r.candidate,
            "status": "PASSED" if r.passed else "FAILED", "samples": r.samples,
            "max_rel": first.max_rel if first else None, "cosine": first.cosine if first else None,
            "top1_agreement": first.top1_agreement if first else None,
            "tolerance": first.tolerance if first else None, "file": str(report_path.relative_to(artefacts.root)),
        }
        return row, [report_path] if report_path.is_file() else []

    stage_id = ":".join(["validate", variant, _g(grid), precision])
    settings = {"precision": precision, "data": "random", "iterations": opts.validate_iterations, "backend": backend}
    outcome = manifest.stage(stage_id, "validate", settings, {"model": target}, run)
    state["validation"].append(outcome.result)


def _compare_step(
    artefacts: Artefacts, manifest: Manifest, variant: str, grid: Grid | None, prof: Any, backend: str,
    state: dict[str, Any],
) -> Callable[[], None]:
    def step() -> None:
        from ..precision import DEFAULT_CALIB_SIZE
        from ..precision.compare import compare_precisions

        fp32 = artefacts.optimized(variant, grid)
        folder = artefacts.folder(variant, grid)

        def run() -> tuple[Any, list[Path]]:
            r = compare_precisions(
                str(fp32), precisions=list(prof.precisions), data="digits", backend=backend, out_dir=folder,
                calib="digits", calib_size=DEFAULT_CALIB_SIZE, profile=prof.name if backend == "trt" else None,
                progress=artefacts.say,
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

        settings = {"precisions": list(prof.precisions), "data": "digits", "backend": backend,
                    "calib": "digits", "calib_size": DEFAULT_CALIB_SIZE}
        outcome = manifest.stage(":".join(["compare", variant, _g(grid)]), "compare", settings, {"model": fp32}, run)
        state["accuracy"].setdefault(variant, []).append(outcome.result)

    return step


def sweep_spec(prof: Any, backend: str, models: list[tuple[str, str, tuple[Grid | None, ...]]], repeats: int) -> Any:
    """The profile's latency sweep: every model at its grids x the profile's precisions x batches."""
    from ..profile.sweep import SweepModel, SweepSettings, SweepSpec

    base = prof.models.baseline.variant if prof.models.baseline else None
    entries = []
    for role, variant, grids in models:
        if role == "baseline":
            entries.append(SweepModel(variant, variant, (None,), is_baseline=True))
        else:
            entries.append(SweepModel(variant, variant, grids, base if role == "latency" else None))
    b = prof.benchmark
    settings = SweepSettings(warmup=b.warmup, iterations=b.iterations, seconds=b.seconds, repeats=repeats, threads=b.threads)
    return SweepSpec(tuple(entries), tuple(prof.precisions), tuple(prof.batch_sizes), (backend,), settings)


def _accuracy_points(state: dict[str, Any]) -> list[Any]:
    from ..profile.plots import AccuracyPoint

    points = []
    for variant, results in state["accuracy"].items():
        for r in results:
            if not r:
                continue
            for c in r["cells"]:
                if c.get("top1") is not None:
                    points.append(AccuracyPoint(variant, str(c["grid"]), str(c["precision"]), float(c["top1"]),
                                                f"compare ({r.get('backend')})"))
    return points


def _profile_step(
    artefacts: Artefacts, manifest: Manifest, prof: Any, backend: str,
    models: list[tuple[str, str, tuple[Grid | None, ...]]], opts: RunOptions, state: dict[str, Any],
) -> None:
    import json

    from ..profile.api import LATENCY_JSON, ProfileRequest, make_timer_factory, write_sweep
    from ..profile.sweep import SweepResult, resolve_threads, run_sweep, spec_to_dict

    spec = sweep_spec(prof, backend, models, opts.repeats)
    inputs: dict[str, Path] = {}
    for m in spec.models:
        for grid in m.grids:
            for p in spec.precisions:
                path = artefacts.precision_path(m.name, grid, p)
                if path.is_file():
                    inputs[f"{m.name}:{_g(grid)}:{p}"] = path
    for variant, results in state["accuracy"].items():
        for r in results:
            if r and r.get("files", {}).get("json"):
                inputs[f"accuracy:{variant}:{r['cells'][0]['grid'] if r['cells'] else ''}"] = artefacts.root / r["files"]["json"]
    accuracy = _accuracy_points(state)

    def run() -> tuple[Any, list[Path]]:
        req = ProfileRequest(targets=[], settings=spec.settings, optimize=opts.optimize,
                             profile=prof if prof.is_tensorrt else None)
        factory = make_timer_factory(req, artefacts, resolve_threads(spec.settings.threads))
        result = run_sweep(spec, factory, progress=artefacts.say, measure_peak_sizes=opts.peak_sizes)
        path, plots = write_sweep(result, artefacts.root, accuracy)
        return {"path": LATENCY_JSON, "plots": [str(p.relative_to(artefacts.root)) for p in plots]}, [path, *plots]

    settings = {"spec": spec_to_dict(spec), "peak_sizes": list(opts.peak_sizes or ())}
    outcome = manifest.stage("profile", "profile", settings, inputs, run)
    path = artefacts.root / outcome.result["path"]
    state["sweep"] = SweepResult.from_dict(json.loads(path.read_text()))
    state["sweep_path"] = path
    state["plots"] = [artefacts.root / p for p in outcome.result["plots"]]
