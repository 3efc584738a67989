"""The stages that make files (export, optimize, precision, build), each run through a folder's
manifest: the one place a stage is keyed, recorded and reused (docs/architecture.md, The unit of work
and the one stage chain).

Each step states the stage's settings (what its key hashes besides the input files), asks the
manifest (:meth:`~.manifest.Manifest.stage`) whether the stage must run, calls the stage's function
when it must (those functions always make their files), and otherwise reads the report back from the
stage's sidecar, an output whose sha256 the manifest has just checked, through the schema layer
(exporter/schema/sidecars.py); a sidecar that does not hold a report makes the stage run again.
``force`` runs the stage whatever is recorded; ``on_run`` is called when it runs, before the work (a
progress line).

Two callers, one mechanism: the chain (:class:`~.artefacts.Artefacts`, cells in a run folder's
layout, stage ids from :class:`~.unit.Unit`) and the standalone verbs `export`, `optimize`,
`precision` and `build`, which run a one-stage chain in their output folder (its ``stages.json``,
stage ids named by the output file: :func:`~.unit.file_stage_id`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..precision.quantize import AUTO_CALIB
from .manifest import Manifest, StageError, StageOutcome
from .stages import BUILD, EXPORT, OPTIMIZE, PRECISION, StageKind

if TYPE_CHECKING:
    from ..engine.build import BuildRequest, BuildResult
    from ..engine.plan import BuildProgress
    from ..export.onnx_export import ExportResult
    from ..export.source import ModelSource
    from ..passes.optimize import OptimizeReport
    from ..precision.convert import PrecisionReport
    from ..profiles import Profile

Report = TypeVar("Report")
Made = tuple[Report, Any, list[Path]]  # the report, the result the manifest records, the files written


@contextlib.contextmanager
def verb_errors() -> Iterator[None]:
    """Around a standalone verb's step: a stage that fails raises what it raised (a UserError exits 2,
    a FAILED check or build 1), not the chain's :class:`~.manifest.StageError`, which a run records."""
    try:
        yield
    except StageError as e:
        if e.__cause__ is None:
            raise
        raise e.__cause__ from None


class _Unreadable(Exception):
    """A recorded stage whose report cannot be read back: it runs again."""


OnRun = Callable[[], None] | None


def _recorded(manifest: Manifest, stage_id: str, kind: StageKind, settings: dict[str, Any], inputs: dict[str, Path],
              make: Callable[[], Made[Report]], read_back: Callable[[StageOutcome], Report], force: bool,
              on_run: OnRun) -> Report:
    if force:
        manifest.forget(stage_id)
    made: list[Report] = []

    def run() -> tuple[Any, list[Path]]:
        if on_run is not None:
            on_run()
        report, result, files = make()
        made.append(report)
        return result, files

    outcome = manifest.stage(stage_id, kind, settings, inputs, run)
    if made:
        return made[0]
    try:
        return read_back(outcome)
    except _Unreadable:
        manifest.forget(stage_id)
        manifest.outcomes.remove(outcome)  # listed once, as the run that follows
        manifest.stage(stage_id, kind, settings, inputs, run)
        return made[0]


def _output(manifest: Manifest, outcome: StageOutcome) -> Path:
    """The stage's first recorded output (its model or engine), hash-checked by the manifest and
    confined to its folder when stages.json was read."""
    if not outcome.outputs:
        raise _Unreadable(outcome.id)
    return manifest.root / outcome.outputs[0]


SidecarReport = TypeVar("SidecarReport", "OptimizeReport", "PrecisionReport")


def _report(kind: type[SidecarReport], manifest: Manifest, outcome: StageOutcome, in_path: Path) -> SidecarReport:
    """The report ``kind`` (an optimisation or conversion report) in the sidecar of the stage's output,
    through the schema layer, as reused: its paths are this call's, it took no time."""
    from ..errors import UserError
    from ..schema import read_json
    from ..schema.sidecars import report

    output = _output(manifest, outcome)
    side = Path(f"{output}.json")
    try:
        recorded = report(kind, read_json(side), side)
    except (OSError, UserError) as e:  # gone, unreadable or off the report's schema: the stage runs again
        raise _Unreadable(str(side)) from e
    return dataclasses.replace(recorded, input=str(in_path), output=str(output), sidecar=str(side),
                               reused=True, seconds=0.0)


def export_step(manifest: Manifest, stage_id: str, src: ModelSource, out_dir: Path, *, batch: str | int = "dynamic",
                opset: int | None = None, force: bool = False,
                on_run: OnRun = None) -> ExportResult:
    """``src`` exported to ``out_dir`` (:func:`exporter.export.export_onnx`; ``opset`` None: its default), or
    the recorded export. The weights are keyed by their sha256 (in the settings:
    :func:`exporter.export.onnx_export.export_key`)."""
    from ..export.onnx_export import DEFAULT_OPSET, ExportResult, check_batch, check_opset, export_key, export_onnx

    opset = DEFAULT_OPSET if opset is None else opset
    settings = export_key(src, check_batch(batch), check_opset(opset))
    path = Path(out_dir) / f"{src.file_stem()}.onnx"

    def make() -> Made[ExportResult]:
        r = export_onnx(src, out_dir, batch=batch, opset=opset)
        return r, r.to_dict(), r.files

    def read_back(outcome: StageOutcome) -> ExportResult:
        # from the record, not the files: `run --keep final` may have dropped them (the stage stays done)
        result = outcome.result if isinstance(outcome.result, dict) else {}
        grid, size = result.get("grid"), result.get("size_bytes")
        if not isinstance(size, int) or not (grid is None or isinstance(grid, str)):
            raise _Unreadable(stage_id)
        data = [manifest.root / o for o in outcome.outputs if o.endswith(".data")]
        return ExportResult(path, Path(f"{path}.json"), True, 0.0, grid, size, data)

    return _recorded(manifest, stage_id, EXPORT, settings, {}, make, read_back, force, on_run)


def optimize_step(manifest: Manifest, stage_id: str, in_path: Path, out_path: Path, *, form: str = "attention",
                  passes: str | list[str] | None = None, force: bool = False,
                  on_run: OnRun = None) -> OptimizeReport:
    """The passes of ``form`` over ``in_path`` into ``out_path`` (:func:`exporter.passes.optimize_model`),
    or the recorded output; the manifest's result is the short form the run's report shows."""
    from ..passes.optimize import OptimizeReport, optimize_model
    from ..passes.registry import resolve_passes

    settings = {"form": form, "passes": [p.name for p in resolve_passes(form, passes)]}

    def make() -> Made[OptimizeReport]:
        r = optimize_model(in_path, out_path, target=form, passes=passes)
        d = r.to_dict()
        result = {"path": str(out_path), "kept": d.get("kept"), "status": d.get("status"),
                  "nodes_before": d.get("nodes_before"), "nodes_after": d.get("nodes_after")}
        return r, result, [Path(out_path), Path(f"{out_path}.json")]

    def read_back(outcome: StageOutcome) -> OptimizeReport:
        return _report(OptimizeReport, manifest, outcome, in_path)

    return _recorded(manifest, stage_id, OPTIMIZE, settings, {"model": Path(in_path)}, make, read_back, force, on_run)


def precision_step(manifest: Manifest, stage_id: str, in_path: Path, out_path: Path, to: str, *, calib: str = AUTO_CALIB,
                   calib_size: int | None = None, keep_fp32: str | None = None, calib_method: str | None = None,
                   target: str = "onnxruntime", force: bool = False,
                   on_run: OnRun = None) -> PrecisionReport:
    """``in_path`` converted to ``to`` (:func:`exporter.precision.convert_precision`), or the recorded conversion."""
    from ..precision import DEFAULT_CALIB_SIZE, convert_precision  # the package's entry point (patchable in tests)
    from ..precision.convert import PrecisionReport, conversion_settings

    size = DEFAULT_CALIB_SIZE if calib_size is None else calib_size
    settings = conversion_settings(to, calib, size, keep_fp32, calib_method, target)

    def make() -> Made[PrecisionReport]:
        r = convert_precision(in_path, out_path, to, calib=calib, calib_size=size, keep_fp32=keep_fp32,
                              calib_method=calib_method, target=target)
        return r, {"path": str(out_path), "reused": False, "notes": r.notes}, [Path(out_path), Path(r.sidecar)]

    def read_back(outcome: StageOutcome) -> PrecisionReport:
        return _report(PrecisionReport, manifest, outcome, in_path)

    return _recorded(manifest, stage_id, PRECISION, settings, {"model": Path(in_path)}, make, read_back, force, on_run)


def build_step(manifest: Manifest, stage_id: str, onnx: Path, profile: Profile, precision: str,
               prepare: Callable[[], BuildRequest], *, target: Any, force: bool = False,
               progress: BuildProgress | None = None, on_run: OnRun = None) -> BuildResult:
    """The engine of the graph ``onnx`` in ``precision`` for ``profile`` (:func:`exporter.engine.build.build_engine`
    on the request ``prepare`` makes, called only when the stage runs, so its errors are the stage's), or
    the recorded one. ``target``: how this machine builds for the profile
    (:func:`exporter.backends.tensorrt.env.build_target`; a standalone build asks :func:`standalone_target`)."""
    from ..engine.build import BuildResult, build_engine, build_settings

    def make() -> Made[BuildResult]:
        r = build_engine(prepare(), progress=progress)
        return r, r.to_dict(), [r.engine, r.sidecar]

    def read_back(outcome: StageOutcome) -> BuildResult:
        from ..errors import UserError
        from ..schema.sidecars import read_engine_sidecar

        engine = _output(manifest, outcome)
        try:
            side = read_engine_sidecar(Path(f"{engine}.json"))
            if side is None:
                raise _Unreadable(stage_id)
            return BuildResult.from_sidecar(engine, side)
        except (UserError, ValueError) as e:
            raise _Unreadable(stage_id) from e

    return _recorded(manifest, stage_id, BUILD, build_settings(profile, precision, target), {"model": Path(onnx)}, make,
                     read_back, force, on_run)


def standalone_target(req: BuildRequest) -> Any:
    """How this machine builds ``req``'s profile, asked after TensorRT's readiness check: a graph its
    parser would refuse is refused first (:class:`exporter.check.CheckFailed`, exit 1), before TensorRT
    is looked for or imported, as :func:`exporter.engine.build.build_engine` orders it (`lookupvit build`)."""
    from ..backends.tensorrt.env import build_target
    from ..check import CheckFailed, check_graph

    if not (readiness := check_graph(req.onnx.path, req.profile)).passed:
        raise CheckFailed(readiness)
    return build_target(req.profile)
