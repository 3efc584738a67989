"""``compare``: accuracy of one model across precisions and compressed grids (docs/architecture.md, The stages).

A dynamic-grid file (docs/dynamic-grid.md) is compared at each of its grids (or those of
``--grids``) from its one set of graphs: one conversion per precision serves every grid, the grid
chosen per cell by the grid input, the PyTorch reference set to that grid.

For each grid: the fp32 ONNX graph (exported from a variant, or given), converted to each precision
by :func:`~exporter.precision.convert_precision`; each graph runs on the chosen backend (ONNX
Runtime, or TensorRT engines built by :mod:`exporter.engine`) next to the fp32 PyTorch model, over
the labelled data, through Polygraphy's ``Comparator`` (:func:`exporter.validate.compare_runners`).
Per cell: task top-1 against the labels, top-1 agreement with fp32 PyTorch, logit max/mean absolute
error, cosine similarity, and PASSED/FAILED against the precision's row of the tolerance table
shared with ``validate`` (:data:`exporter.validate.tolerances.TOLERANCES`).

A precision the backend cannot run is tried for real (an ONNX Runtime session is created and run
on one image; a TensorRT engine is built) and reported as unsupported with the runtime's reason;
the other cells still run.

``locate``: for a failing cell, every tensor of the fp32 graph and of the candidate graph is marked
as an output (Polygraphy ``ModifyOutputs(outputs=constants.MARK_ALL)``), both run on ONNX Runtime,
and the first tensor in graph order whose error against fp32 exceeds the tolerance (relative to that
tensor's own scale) is reported with its node and op. Marking outputs prevents fusions across the
marked tensors (on TensorRT above all), so the marked run can differ from the fused engine.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backends.base import error_line
from ..backends.registry import Backend, Setup, Tried, backends
from ..backends.registry import backend as registered
from ..data import BUILTIN_DATA
from ..data_fit import accuracy_fit, require_meaningful
from ..errors import UserError
from ..io import atomic_path, check_writable_dir, write_json
from ..models.config import Grid
from ..pipeline.artefacts import Artefacts, ChainSettings
from ..pipeline.manifest import Manifest, StageError
from ..precision.convert import DEFAULT_CALIB_SIZE, check_precision
from ..precision.quantize import AUTO_CALIB, resolve_calibration
from ..precisions import PRECISIONS
from ..profiles import Profile, load_profile
from ..versions import tool_versions

NOT_MEANINGFUL = "NOT MEANINGFUL"
DEFAULT_PRECISIONS = PRECISIONS
LOCATE_SAMPLES = 16
BATCH = 64
LOCATE_NOTE = (
    "Located on ONNX Runtime with every tensor marked as a graph output. Marking outputs stops fusions "
    "across the marked tensors; on TensorRT this changes which layers are fused (and so the kernels and "
    "their rounding), so the first diverging tensor of a fused TensorRT engine can differ from this one."
)

Progress = Callable[[str], None]


@dataclass
class Located:
    """The first tensor (graph order) whose error against fp32 exceeds the tolerance."""

    found: bool
    node: str | None = None
    op: str | None = None
    tensor: str | None = None
    position: int | None = None  # index of the node in the fp32 graph
    nodes: int = 0  # nodes in the fp32 graph
    checked: int = 0  # tensors compared
    max_abs: float | None = None
    max_rel: float | None = None
    cosine: float | None = None
    tolerance: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    backend: str = ""
    reason: str | None = None  # why the search could not run
    note: str = LOCATE_NOTE

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Cell:
    grid: str
    precision: str
    status: str  # PASSED | FAILED | NOT MEANINGFUL (passed, but top-1 means nothing) | unsupported | error
    reason: str | None = None  # why a cell is unsupported or errored
    note: str | None = None  # how it ran, when not the plain way
    model: str | None = None
    backend: str | None = None
    samples: int = 0
    top1: float | None = None  # task accuracy, percent
    top1_delta: float | None = None  # points against the fp32 PyTorch model
    agreement: float | None = None  # top-1 agreement with fp32 PyTorch, percent
    max_abs: float | None = None
    mean_abs: float | None = None
    max_rel: float | None = None
    cosine: float | None = None
    tolerance: dict[str, float] | None = None
    would_pass: dict[str, float] | None = None
    seconds: float = 0.0
    locate: Located | None = None

    @property
    def ran(self) -> bool:
        return self.status in ("PASSED", "FAILED", NOT_MEANINGFUL)


@dataclass
class ComparisonResult:
    name: str
    source: dict[str, Any]  # variant or ONNX model, weights
    data: str
    samples: int
    backend: str
    grids: list[str]
    precisions: list[str]
    reference: dict[str, float]  # grid -> fp32 PyTorch top-1 (percent)
    cells: list[Cell] = field(default_factory=list)
    calibration: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    meaningless: list[str] = field(default_factory=list)  # why top-1 means nothing (--allow-meaningless)
    seconds: float = 0.0
    versions: dict[str, str | None] = field(default_factory=tool_versions)

    @property
    def passed(self) -> bool:
        """Every cell that ran passed, and none errored (unsupported cells do not count)."""
        ok = ("PASSED", NOT_MEANINGFUL, "unsupported")
        return all(c.status in ok for c in self.cells) and any(c.ran for c in self.cells)

    @property
    def status(self) -> str:
        """PASSED or FAILED; a comparison without meaning is never PASSED."""
        if not self.passed:
            return "FAILED"
        return NOT_MEANINGFUL if self.meaningless else "PASSED"

    def cell(self, grid: str, precision: str) -> Cell | None:
        return next((c for c in self.cells if c.grid == grid and c.precision == precision), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed and not self.meaningless
        d["status"] = self.status
        return d


# --- runners --------------------------------------------------------------------------------------


def _recording(inner: Any, name: str | None = None) -> Any:
    """A Polygraphy runner that delegates to ``inner`` and keeps each output, so the task accuracy is
    measured on the very outputs ``compare_runners`` compared (one pass per backend)."""
    from polygraphy.backend.base import BaseRunner

    class RecordingRunner(BaseRunner):
        def __init__(self) -> None:
            super().__init__(name=name or inner.name, prefix="recording-runner")
            self.outputs: list[OrderedDict[str, np.ndarray]] = []

        def activate_impl(self) -> None:
            inner.activate()

        def get_input_metadata_impl(self) -> Any:
            return inner.get_input_metadata(use_numpy_dtypes=False)

        def infer_impl(self, feed_dict: dict[str, np.ndarray]) -> OrderedDict[str, np.ndarray]:
            out = inner.infer(feed_dict, check_inputs=False)
            self.inference_time = inner.last_inference_time()
            self.outputs.append(OrderedDict((k, np.array(v, copy=True)) for k, v in out.items()))
            return out

        def deactivate_impl(self) -> None:
            inner.deactivate()

    return RecordingRunner()


@dataclass
class _Runtime:
    """A registered backend made ready for the comparison."""

    backend: Backend
    setup: Setup

    def tried(self, g: _Grid, precision: str, path: Path, artefacts: Artefacts,
              sample: dict[str, np.ndarray]) -> Tried:
        """The backend's runner for one cell's file: the graph itself, or the engine the pipeline builds
        from it (a converted file the user gave is built here, as it is)."""
        if self.backend.runs != "engine":
            return self.backend.tried(path, precision, sample)
        if g.given is None:
            return self.backend.tried(artefacts.engine(g.model, g.grid, precision), precision, sample)
        try:
            engine = artefacts.engine_of(path, None, artefacts.folder(g.model, None))
        except UserError as e:
            return Tried(None, f"TensorRT cannot run the {precision} graph: {e.message}")
        except Exception as e:  # a builder failure: report it in the cell
            return Tried(None, f"TensorRT failed on the {precision} graph: {error_line(e)}")
        return self.backend.tried(engine, precision, sample)


@contextlib.contextmanager
def _polygraphy_failures_quiet() -> Iterator[None]:
    """A FAILED cell is a result, shown in the table; Polygraphy would also log it as an error."""
    logger = logging.getLogger("Polygraphy")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


# --- locate ---------------------------------------------------------------------------------------


def _all_outputs(path: Path) -> Any:
    from polygraphy import constants
    from polygraphy.backend.onnx import ModifyOutputs, OnnxFromPath

    return ModifyOutputs(OnnxFromPath(str(path)), outputs=constants.MARK_ALL)()


def _run_all(model: Any, feed: dict[str, np.ndarray], providers: list[str]) -> dict[str, np.ndarray]:
    from ..backends import ort_session

    session = ort_session(model.SerializeToString(), providers)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def locate_divergence(
    reference: str | Path, candidate: str | Path, feed: dict[str, np.ndarray], tolerance: Any, providers: list[str] | None = None
) -> Located:
    """The first tensor, in the graph order of ``reference`` (the fp32 ONNX graph), whose value in
    ``candidate`` differs from it by more than ``tolerance`` (max error relative to that tensor's
    scale, or cosine similarity), with both graphs run on ONNX Runtime with all tensors marked."""
    from ..backends import ort_providers, quiet_polygraphy
    from ..validate import output_metrics

    quiet_polygraphy()
    providers = providers or ort_providers()
    samples = len(next(iter(feed.values())))
    result = Located(found=False, tolerance=tolerance.to_dict(), samples=samples, backend=f"onnxruntime ({providers[0]})")
    try:
        ref_model = _all_outputs(Path(reference))
        ref = _run_all(ref_model, feed, providers)
        cand = _run_all(_all_outputs(Path(candidate)), feed, providers)
    except Exception as e:
        result.reason = f"the graphs with every tensor marked could not run on ONNX Runtime: {error_line(e)}"
        return result
    result.nodes = len(ref_model.graph.node)
    for position, node in enumerate(ref_model.graph.node):
        for name in node.output:
            r, c = ref.get(name), cand.get(name)
            if r is None or c is None or r.shape != c.shape or r.size == 0:
                continue
            if not (np.issubdtype(r.dtype, np.floating) and np.issubdtype(np.asarray(c).dtype, np.floating)):
                continue
            result.checked += 1
            c32 = np.asarray(c, dtype=np.float32)
            finite = bool(np.isfinite(c32).all())
            m = output_metrics(np.nan_to_num(c32, nan=0.0, posinf=0.0, neginf=0.0) if not finite else c32, r)
            exceeds = (
                not finite or m["max_rel"] > tolerance.max_error or m["cosine"] < tolerance.min_cosine  # type: ignore[operator]
            )
            if exceeds:
                result.found = True
                result.node, result.op, result.tensor, result.position = node.name, node.op_type, name, position
                result.max_abs = float("inf") if not finite else m["max_abs"]
                result.max_rel = float("inf") if not finite else m["max_rel"]
                result.cosine = m["cosine"]
                return result
    return result


# --- the comparison -------------------------------------------------------------------------------


def parse_precisions(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    items = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec) if s and s.strip()]
    if not items:
        raise UserError("No precision given.", f"Pass e.g. --precisions {','.join(PRECISIONS)}.")
    return list(dict.fromkeys(check_precision(p) for p in items))


@dataclass
class _Grid:
    label: str
    model: str  # the pipeline's name for the model (a variant, or a given file's stem)
    grid: Grid | None
    source: Any  # ModelSource of the PyTorch reference
    given: Path | None = None  # a graph the user already converted: used as it is, never converted again
    at: Grid | None = None  # a dynamic-grid model: the grid fed to its grid input (its artefacts have no grid)
    grid_input: str | None = None

    def feed(self, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """``feeds`` with the grid input that selects this grid (a dynamic-grid model), else as they are."""
        if self.at is None or self.grid_input is None:
            return feeds
        return [{**f, self.grid_input: np.zeros(self.at, dtype=np.float32)} for f in feeds]


def _plan_grids(
    model: str, weights: str | None, grids: str | None, artefacts: Artefacts, factory: str | None = None,
) -> tuple[str, dict[str, Any], list[_Grid], str | None]:
    """Name, source description, the grids to compare and, for a converted file, its precision.

    A variant is exported and optimised per grid through the pipeline (``artefacts``); an fp32 ``.onnx``
    is the pipeline's input as given; a converted ``.onnx`` (its metadata declares another precision)
    is compared as it is, in that one precision."""
    from ..export import read_model_metadata, resolve_variant_source
    from ..models import get_variant
    from ..validate import reference_source

    is_file = model.endswith(".onnx") or Path(model).is_file()
    if is_file:
        path = Path(model)
        meta = read_model_metadata(path)  # checks that it exists, is ONNX, and that its metadata is sound
        src = reference_source(path, factory=factory, weights=weights)
        label = _label(meta.grid)
        if meta.grids and meta.grid_input is not None:  # one file, every grid: its artefacts are shared
            desc = {"onnx": str(path), "weights": src.weights, "weights_id": src.weights_id()}
            name = path.name.removesuffix(".onnx")
            return name, desc, _dynamic_grids(path, meta, src, grids, name), (
                meta.precision if meta.precision != "fp32" else None)
        if grids is not None and [g.strip() for g in grids.split(",") if g.strip()] != [label]:
            raise UserError(
                f"{path.name} is exported for grid {label}; an ONNX graph has one grid.",
                "Drop --grids, or pass the variant name to compare several grids.",
            )
        desc = {"onnx": str(path), "weights": src.weights, "weights_id": src.weights_id()}
        name = path.name.removesuffix(".onnx")
        if meta.precision != "fp32":
            return name, desc, [_Grid(label, name, meta.grid, src, given=path)], meta.precision
        artefacts.imported[name] = path
        return name, desc, [_Grid(label, name, meta.grid, src)], None
    if factory is not None:
        raise UserError(
            "--model names the PyTorch reference of an ONNX file; with a variant name the variant is the model.",
            "Pass the .onnx exported with --model, e.g. `lookupvit compare out/mymodel_g7.onnx --model pkg.mod:build`.",
        )

    cfg = get_variant(model).config  # unknown names raise UserError with suggestions
    if grids is not None:
        specs: list[Any] = [g for g in grids.split(",") if g.strip()]
        if not specs:
            raise UserError("--grids is empty.", "Pass grids as a comma-separated list, e.g. --grids 3,5,7.")
    else:
        specs = list(getattr(cfg, "default_grids", ())) or [None]
    sources = list({src.grid: src for src in (resolve_variant_source(model, weights, g) for g in specs)}.values())
    out = [_Grid(_label(src.grid), model, src.grid, src) for src in sources]  # each grid once (--grids 3,,3)
    return model, {"variant": model, "weights": weights, "weights_id": sources[0].weights_id()}, out, None


def _dynamic_grids(path: Path, meta: Any, src: Any, grids: str | None, name: str) -> list[_Grid]:
    """The grids of a dynamic-grid file to compare (all, or those of ``--grids``), sharing its graphs."""
    from ..export.grid_input import chosen_grids

    chosen = chosen_grids(path.name, tuple(meta.grids), grids)  # the one rule, as `profile` reads --grids
    given = path if meta.precision != "fp32" else None
    return [_Grid(_label(g), name, None, src, given=given, at=g, grid_input=meta.grid_input.name) for g in chosen]


def _label(grid: Any) -> str:
    from ..models import grid_label

    return grid_label(grid) if grid else "-"


def compare_precisions(
    model: str,
    weights: str | None = None,
    precisions: str | list[str] | tuple[str, ...] = DEFAULT_PRECISIONS,
    grids: str | None = None,
    data: str = "digits",
    backend: str = "ort",
    locate: bool = False,
    out_dir: str | Path | None = None,
    calib: str = AUTO_CALIB,
    calib_size: int = DEFAULT_CALIB_SIZE,
    profile: str | Path | Profile | None = None,
    progress: Progress | None = None,
    factory: str | None = None,
    allow_meaningless: bool = False,
    optimize: bool | None = None,
    artefacts: Artefacts | None = None,
) -> ComparisonResult:
    """Compare ``model`` (a variant name, an fp32 ``.onnx`` or a converted one) across ``precisions``
    and ``grids`` on ``data``; write ``accuracy.json`` and ``accuracy.png`` to ``out_dir`` (default
    ``runs/compare/<name>``). Every graph comes from the pipeline (``artefacts``: the caller's, e.g. a
    run's, or one over ``out_dir``), so a cell's file is the one `run` makes for it. See the module
    docstring."""
    from ..backends.torch.runner import TorchRunner
    from ..data import load_data
    from ..export import load_source
    from ..validate import compare_runners, tolerance_for

    t0 = time.perf_counter()
    say = progress or (lambda _msg: None)
    wanted = parse_precisions(precisions)
    candidates = tuple(b.key for b in backends() if b.runs != "module")  # what runs a converted graph or its engine
    be = registered(backend, candidates)  # any of its names; unknown ones refused with the choices
    if calib_size < 1:
        raise UserError(f"--calib-size {calib_size} must be at least 1.")
    if data not in BUILTIN_DATA and not Path(data).exists():  # before any export: fail fast
        raise UserError(
            f"Cannot read dataset {data!r}: it does not exist.",
            "Pass --data digits, a folder with one sub-folder of images per class, or an .npz with 'images' and 'labels'.",
        )
    if any(p in ("int8", "fp8") for p in wanted) and calib not in ("auto", *BUILTIN_DATA) and not Path(calib).exists():
        raise UserError(f"Calibration data {calib!r} does not exist.", "Pass --calib digits, a class-folder directory or an .npz.")
    name = Path(model).stem if model.endswith(".onnx") else model
    out = Path(out_dir) if out_dir is not None else Path("runs") / "compare" / name
    check_writable_dir(out)  # before any export or conversion
    named = load_profile(profile) if isinstance(profile, (str, Path)) else profile  # a typo is an error first
    runtime = _Runtime(be, be.setup(named, f"lookupvit compare --backend {be.name}"))
    if artefacts is None:
        settings = ChainSettings(optimize=optimize, calib=calib, calib_size=calib_size, weights=weights,
                                 profile=runtime.setup.profile)
        artefacts = Artefacts(out, settings, Manifest(out), say)
    name, source, plan, given_precision = _plan_grids(model, weights, grids, artefacts, factory)
    if given_precision is not None:
        if precisions is not DEFAULT_PRECISIONS and wanted != [given_precision]:
            raise UserError(
                f"{Path(model).name} is a {given_precision} graph: it is compared as it is, in {given_precision}.",
                f"Drop --precisions (or pass --precisions {given_precision}); to compare other precisions, pass the "
                "fp32 graph or the variant.",
            )
        wanted = [given_precision]
    if plan[0].at is not None and plan[0].given is None:
        artefacts.imported[plan[0].model] = Path(model)
    for g in plan:  # the fp32 graph of every grid first (export, optimize): the reference shapes come from it
        if g.given is None:
            say(f"grid {g.label}: export and optimize")
            artefacts.optimized(g.model, g.grid)
    # the fp32 graph the chain runs (the optimised one; `run --keep final` may have dropped the export)
    first_graph = plan[0].given or artefacts.optimized_path(plan[0].model, plan[0].grid)

    loaded_first = load_source(plan[0].source)
    spec = loaded_first.input_spec()
    dataset = load_data(data, spec)
    if len(dataset) == 0:
        raise UserError(f"{dataset.source} has no images.")
    fit = accuracy_fit(dataset, spec, _classes(loaded_first, dataset), source.get("weights_id"))
    meaningless = require_meaningful(fit, name, allow_meaningless)
    static = _static_batch(first_graph)
    batch = static or min(BATCH, runtime.setup.max_batch or BATCH)
    n = len(dataset) - (len(dataset) % batch if static else 0)
    if n == 0:
        raise UserError(f"{first_graph.name} takes batches of {static}; {dataset.source} has only {len(dataset)} images.")
    feeds = [{"images": dataset.images[i : i + batch]} for i in range(0, n, batch)]
    labels = dataset.labels[:n]

    result = ComparisonResult(
        name=name, source=source, data=dataset.source, samples=n, backend=runtime.setup.description,
        grids=[g.label for g in plan], precisions=wanted, reference={},
    )
    result.meaningless = meaningless
    if static and n < len(dataset):
        result.notes.append(f"static batch {static}: the last {len(dataset) - n} images are left out")
    for g in plan:
        loaded = loaded_first if g is plan[0] else load_source(g.source)
        if g.at is not None:  # a dynamic-grid model: the reference at this grid, the graph fed it
            loaded.module.set_grid(g.at)
        for precision in wanted:
            say(f"grid {g.label}: {precision}")
            reference = _recording(TorchRunner(loaded.module, loaded.input_shape, loaded.output_names, name="pytorch-fp32"))
            cell = _run_cell(g, precision, artefacts, runtime, reference, g.feed(feeds), labels, compare_runners,
                             tolerance_for)
            if g.label not in result.reference and reference.outputs:
                result.reference[g.label] = _top1(reference.outputs, labels)
            if cell.top1 is not None and g.label in result.reference:
                cell.top1_delta = cell.top1 - result.reference[g.label]
            if locate and cell.status == "FAILED" and cell.model:
                say(f"grid {g.label}: locating the first {precision} tensor over tolerance")
                fp32 = artefacts.converted(g.model, g.grid, "fp32") if g.given is None else None
                cell.locate = locate_divergence(
                    fp32, Path(cell.model), g.feed([{"images": dataset.images[:LOCATE_SAMPLES]}])[0],
                    tolerance_for(precision)
                ) if fp32 is not None else Located(False, reason="a converted file was given: its fp32 graph is unknown")
            if meaningless and cell.status == "PASSED":
                cell.status = NOT_MEANINGFUL
            result.cells.append(cell)
        if g.label not in result.reference:  # every cell unsupported: still give the PyTorch figure
            from ..evaluate import predict

            pred = predict(loaded.module, dataset.images[:n], None)
            result.reference[g.label] = 100.0 * float((pred == labels).mean())
    used_calib = resolve_calibration(calib, spec)
    result.calibration = {"data": used_calib, "size": calib_size, "split": "train" if used_calib in BUILTIN_DATA else None}
    result.seconds = round(time.perf_counter() - t0, 2)
    result.files = {"json": str(out / "accuracy.json"), "plot": str(out / "accuracy.png")}
    plot_comparison(result, out / "accuracy.png")
    write_json(out / "accuracy.json", result.to_dict())
    return result


@torch.inference_mode()
def _classes(loaded: Any, dataset: Any) -> int | None:
    """The number of class logits of the PyTorch model (None: it returns no logits)."""
    out = loaded.module(torch.from_numpy(dataset.images[:1]))
    return int(out.shape[-1]) if isinstance(out, torch.Tensor) and out.ndim == 2 else None


def _static_batch(path: Path) -> int | None:
    from ..onnx_io import onnx_static_batch

    return onnx_static_batch(path)


def _top1(outputs: list[OrderedDict[str, np.ndarray]], labels: np.ndarray) -> float:
    logits = np.concatenate([next(iter(o.values())) for o in outputs])
    return 100.0 * float((logits.argmax(-1) == labels[: len(logits)]).mean())


def _run_cell(
    g: _Grid, precision: str, artefacts: Artefacts, runtime: Any, reference: Any, feeds: list[dict[str, np.ndarray]],
    labels: np.ndarray, compare_runners: Any, tolerance_for: Any,
) -> Cell:
    t0 = time.perf_counter()
    cell = Cell(grid=g.label, precision=precision, status="error", backend=runtime.setup.description)
    try:
        path = g.given or artefacts.converted(g.model, g.grid, precision)  # the pipeline's file for this cell
    except (UserError, StageError) as e:
        cell.reason = f"conversion to {precision} failed: {e.message if isinstance(e, UserError) else e.reason}"
        return cell
    cell.model = str(path)
    try:
        tried = runtime.tried(g, precision, path, artefacts, feeds[0])
        runner, why, cell.note = tried.runner, tried.reason, tried.note
    except Exception as e:
        cell.reason = f"preparing the {precision} runner failed: {error_line(e)}"
        return cell
    if runner is None:
        cell.status, cell.reason = "unsupported", why
        cell.seconds = time.perf_counter() - t0
        return cell
    candidate = _recording(runner)
    tolerance = tolerance_for(precision)
    try:
        with _polygraphy_failures_quiet():
            outputs = compare_runners(reference, candidate, feeds, tolerance)
    except Exception as e:
        cell.reason = f"running the {precision} graph failed: {error_line(e)}"
        return cell
    first = next((o for o in outputs if o.top1_agreement is not None), outputs[0] if outputs else None)
    if first is None:
        cell.reason = "the graph shares no output name with the PyTorch model"
        return cell
    cell.status = "PASSED" if all(o.passed for o in outputs) else "FAILED"
    cell.samples = int(sum(len(f["images"]) for f in feeds))
    cell.top1 = _top1(candidate.outputs, labels)
    cell.agreement = None if first.top1_agreement is None else 100.0 * first.top1_agreement
    cell.max_abs, cell.mean_abs, cell.max_rel, cell.cosine = first.max_abs, first.mean_abs, first.max_rel, first.cosine
    cell.tolerance, cell.would_pass = first.tolerance, first.would_pass
    cell.seconds = round(time.perf_counter() - t0, 3)
    return cell


# --- plot -----------------------------------------------------------------------------------------


def _readable_percent_axis(ax: Any, one: float | None) -> None:
    """A percent axis spanning at least five points (or ten test images), capped at 100: a one-image
    difference (0.28 points on 360 images) does not fill the panel like a cliff."""
    lo, hi = ax.get_ylim()
    span = max(5.0, 10 * one if one else 0.0)
    if hi - lo < span:
        top = min(100.0 + (one or 0.5) / 2, max(hi, lo + span))
        ax.set_ylim(top - span, top)


def plot_comparison(result: ComparisonResult, path: str | Path) -> Path:
    """Task top-1 and agreement with fp32 PyTorch per precision (lines) over grids, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(result.grids), dtype=float)
    fig, (ax_acc, ax_agree) = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    ref = [result.reference.get(g, np.nan) for g in result.grids]
    ax_acc.plot(x, ref, "k--", marker="x", markersize=9, label="PyTorch fp32", zorder=5)
    markers = {"fp32": "o", "fp16": "s", "bf16": "D", "int8": "^", "fp8": "v"}
    for i, p in enumerate(result.precisions):
        cells = [result.cell(g, p) for g in result.grids]
        acc = [c.top1 if c and c.top1 is not None else np.nan for c in cells]
        agree = [c.agreement if c and c.agreement is not None else np.nan for c in cells]
        label = p if any(c and c.ran for c in cells) else f"{p} (unsupported)"
        shift = (i - (len(result.precisions) - 1) / 2) * 0.04  # a small offset so equal values stay visible
        (line,) = ax_acc.plot(x + shift, acc, marker=markers.get(p, "o"), label=label, alpha=0.85)
        ax_agree.plot(x + shift, agree, marker=markers.get(p, "o"), label=label, color=line.get_color(), alpha=0.85)
    one = 100.0 / result.samples if result.samples else None  # what one test image is worth, in points
    for ax, title in ((ax_acc, f"Task top-1 on {result.data}"), (ax_agree, "Top-1 agreement with fp32 PyTorch")):
        ax.set_xticks(x, result.grids)
        ax.set_xlim(-0.5, len(result.grids) - 0.5)  # one grid: its points side by side, not across the panel
        ax.set_xlabel("compressed grid")
        ax.set_ylabel("%" + (f"  (one test image = {one:.2g} points)" if one else ""))
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
        _readable_percent_axis(ax, one)
    fig.suptitle(f"{result.name}: precisions on {result.backend}")
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
