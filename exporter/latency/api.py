"""``lookupvit profile``: what to time (a variant, an ONNX file or an engine), and the sweep over it.

The library behind the verb and the ``profile`` stage of ``lookupvit run``. Model files come from
the pipeline's stages in the output folder (:class:`exporter.pipeline.artefacts.Artefacts`: export ->
optimize -> precision -> build), so a second call with the same inputs reuses them.

A given ONNX file or engine is described by what it declares: its precision from its
``lookupvit.precision`` metadata, else from its graph (casts and Q/DQ types, the rule TensorRT's
strongly typed builds follow: :func:`exporter.engine.plan.read_onnx`), its variant and grid from its
``lookupvit.*`` metadata. It is timed as given, never optimised or converted again; asking for
another precision of it is an error before any work.

A dynamic-grid file (docs/dynamic-grid.md) is swept at its grids (all it serves, or those of
``--grids``; others are refused with the list) without exporting again: each cell is one session of
that file fed the grid input of its grid. ``profile VARIANT --dynamic-grid`` exports the variant once
as such a graph through the pipeline (:meth:`exporter.pipeline.artefacts.Artefacts.share`) and sweeps it
the same way.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CannotRunHere, UserError
from ..models import get_variant, grid_label, list_variants, parse_grids
from ..models.config import Grid, read_grid_spec
from ..profiles import Profile
from .plots import AccuracyPoint, plot_all
from .sweep import Cell, SweepModel, SweepResult, SweepSettings, SweepSpec, run_sweep
from .timers import StageFailed, Timer, Unsupported

LATENCY_JSON = "latency.json"
PLOTS_DIR = "plots"


@dataclass(frozen=True)
class Target:
    """One thing to profile."""

    kind: str  # "variant", "onnx" or "engine"
    name: str  # the model name in tables and file names
    variant: str | None  # the registered variant (for MACs, the PyTorch model and the baseline)
    grids: tuple[Grid | None, ...]
    path: Path | None = None  # the given ONNX file or engine
    precision: str | None = None  # what a given file declares (None for a variant: any precision)
    precision_source: str = ""  # "metadata" or "graph"
    dynamic_grid: bool = False  # one graph serves every grid (a dynamic-grid file, or --dynamic-grid)

    @property
    def is_lookupvit(self) -> bool:
        return bool(self.variant) and bool(get_variant(self.variant).config.default_grids)  # type: ignore[arg-type]


def default_baseline(variant: str) -> str | None:
    """The plain ViT of the same width and patch: ``lookupvit_b16`` -> ``vit_b16`` (None if not registered
    or not an image model)."""
    cfg = get_variant(variant).config
    if not variant.startswith("lookupvit_") or getattr(cfg, "is_video", False):
        return None
    size_patch = variant.removeprefix("lookupvit_").split("_")[0]
    name = f"vit_{size_patch}"
    return name if name in {v.name for v in list_variants()} else None


def _meta_grid(meta: dict[str, str]) -> Grid | None:
    g = meta.get("grid")
    return read_grid_spec(g) if g else None


def resolve_target(spec: str, grids: str | None = None, dynamic_grid: bool = False) -> Target:
    """A variant name, an ``.onnx`` file or a TensorRT engine (``.plan``/``.engine``) -> :class:`Target`;
    ``dynamic_grid``: a variant exported once as a dynamic-grid graph serving its grids."""
    from ..export.grid_input import chosen_grids

    path = Path(spec)
    if dynamic_grid and (path.suffix in (".onnx", ".plan", ".engine") or path.is_file()):
        raise UserError(f"--dynamic-grid applies to a variant; {path.name} is a file.",
                        "Drop --dynamic-grid: a dynamic-grid file is swept at its grids as it is.")
    if path.suffix in (".plan", ".engine"):
        if not path.is_file():
            raise UserError(f"Engine {path} does not exist.", "Build one with `lookupvit build MODEL.onnx --profile NAME`.")
        from ..backends.tensorrt.sidecar import sidecar_path
        from ..schema.sidecars import read_engine_sidecar

        side = read_engine_sidecar(sidecar_path(path))
        meta = {k.removeprefix("lookupvit."): v for k, v in (side.onnx.metadata if side is not None else {}).items()}
        variant = meta.get("variant") or None
        precision = (side.precision if side is not None else None) or meta.get("precision") or None
        served = _served_grids(meta, path)
        if served:  # a dynamic-grid engine: one optimisation profile per grid
            return Target("engine", path.name.removesuffix(path.suffix), variant, chosen_grids(path.name, served, grids),
                          path, precision, "engine sidecar" if precision else "", dynamic_grid=True)
        _no_grids_for_files(grids, path)
        return Target("engine", path.name.removesuffix(path.suffix), variant, (_meta_grid(meta),), path,
                      precision, "engine sidecar" if precision else "")
    if path.suffix == ".onnx" or path.is_file():
        from ..engine.plan import read_onnx

        info = read_onnx(path)  # checks the file; reads no weights
        meta = {k.removeprefix("lookupvit."): v for k, v in info.metadata.items() if k.startswith("lookupvit.")}
        if info.grid_input is not None:  # a dynamic-grid file: its grids, fed per cell
            return Target("onnx", path.name.removesuffix(".onnx"), meta.get("variant") or None,
                          chosen_grids(path.name, info.grids, grids), path, info.precision, info.precision_source,
                          dynamic_grid=True)
        _no_grids_for_files(grids, path)
        return Target("onnx", path.name.removesuffix(".onnx"), meta.get("variant") or None, (_meta_grid(meta),), path,
                      info.precision, info.precision_source)
    v = get_variant(spec)  # unknown names raise with suggestions
    cfg = v.config
    if not cfg.default_grids:
        if grids or dynamic_grid:
            raise UserError(f"{spec} is a ViT baseline; it has no compressed grid.",
                            "Drop --grids" + (" and --dynamic-grid." if dynamic_grid else "."))
        return Target("variant", spec, spec, (None,))
    chosen = parse_grids(grids, cfg.lookup_grid) if grids else list(cfg.default_grids)
    return Target("variant", spec, spec, tuple(dict.fromkeys(chosen)), dynamic_grid=dynamic_grid)


def _served_grids(meta: dict[str, str], path: Path) -> tuple[Grid, ...]:
    """The grids a dynamic-grid model serves, from its (unprefixed) lookupvit metadata; () for one grid."""
    from ..export.metadata import parse_metadata

    keys = {k: meta[k] for k in ("grids", "grid_input") if meta.get(k)}
    return parse_metadata(keys, path).grids if keys else ()


def _no_grids_for_files(grids: str | None, path: Path) -> None:
    if grids:
        raise UserError(
            f"{path.name} is built for one compressed grid; --grids applies to variants.",
            "Drop --grids, or pass the variant name to sweep grids.",
        )


def precisions_for(targets: list[Target], requested: tuple[str, ...] | None) -> tuple[str, ...]:
    """The sweep's precisions: ``requested`` (default fp32) for variants; a given file runs in the
    precision it declares, and asking for another one is an error here, before any work."""
    declared = {t.precision for t in targets if t.kind != "variant" and t.precision}
    for t in targets:
        if t.kind == "variant" or not t.precision or requested is None:
            continue
        other = [p for p in requested if p != t.precision]
        if other:
            raise UserError(
                f"--precisions {','.join(requested)}: {t.path.name if t.path else t.name} is "
                f"{'a' if t.precision.startswith('b') else 'an'} {t.precision} graph "
                f"(from its {t.precision_source}); it is timed as given and never converted again.",
                f"Drop --precisions (or pass --precisions {t.precision}); to time another precision, profile the "
                f"variant ({t.variant or 'its variant name'}) or convert the fp32 graph with `lookupvit precision`.",
            )
    if requested is not None:
        return requested
    return tuple(sorted(declared)) or ("fp32",)


def parse_list(spec: str, what: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    if not items:
        raise UserError(f"No {what} given.", f"Pass a comma-separated list, e.g. {','.join(allowed or ('...',))}.")
    if allowed:
        bad = [i for i in items if i not in allowed]
        if bad:
            raise UserError(f"Unknown {what} {', '.join(bad)}.", f"Choose from {', '.join(allowed)}.")
    return items


def parse_batches(spec: str, option: str = "--batch") -> tuple[int, ...]:
    try:
        out = tuple(dict.fromkeys(int(s) for s in spec.split(",") if s.strip()))
    except ValueError:
        out = ()
    if not out or any(b < 1 for b in out):
        raise UserError(f"{option} {spec!r} is not a list of positive integers.", f"Use e.g. {option} 1,8,32.")
    return out


@dataclass
class ProfileRequest:
    targets: list[Target]
    precisions: tuple[str, ...] = ("fp32",)
    batches: tuple[int, ...] = (1,)
    backends: tuple[str, ...] = ("torch", "ort", "trt")
    baseline: str | None = "auto"  # "auto": vit_<size><patch>; None: no baseline
    settings: SweepSettings = field(default_factory=SweepSettings)
    optimize: bool | None = None
    profile: Profile | None = None  # a TensorRT profile for engine builds
    peak_sizes: tuple[int, ...] | None = None


def auto_backends() -> tuple[str, ...]:
    """``--backend auto``: the backends timed by default that can run here (PyTorch and ONNX Runtime;
    TensorRT where it and a CUDA GPU are present)."""
    from ..backends.registry import backends

    return tuple(b.key for b in backends() if b.by_default and not b.missing())


def latency_request(target: str, *, grids: str | None = None, dynamic_grid: bool = False,
                    backends: tuple[str, ...] | None = None, precisions: str | None = None, batch: str = "1",
                    settings: SweepSettings | None = None, baseline: str | None = "auto",
                    optimize: bool | None = None, profile: str | None = None, peak_sizes: str | None = None,
                    out_dir: str | Path = "runs/profile") -> ProfileRequest:
    """What ``lookupvit latency`` times, checked before any model is made: the target (a variant, an ONNX
    file or an engine), its precisions and batches, the backends (None: :func:`auto_backends`; an engine
    runs on the engine backends), a batch that does not fit in memory, the output folder, and each
    backend's preflight (it can run here; TensorRT: the profile's engines build here)."""
    from ..backends.registry import backend
    from ..backends.registry import backends as registered
    from ..io import check_memory, check_writable_dir
    from ..models.memory import inference_bytes
    from ..precisions import PRECISIONS

    tgt = resolve_target(target, grids, dynamic_grid)
    backend_list = backends if backends is not None else auto_backends()
    if tgt.kind == "engine":
        backend_list = tuple(b.key for b in registered() if b.runs == "engine")
    chosen = precisions_for([tgt], parse_list(precisions, "precision", PRECISIONS) if precisions is not None else None)
    batch_list = parse_batches(batch)
    if tgt.variant:  # refuse a batch that cannot fit before any model is made
        cfg = get_variant(tgt.variant).config
        big = max(batch_list)
        check_memory(max(inference_bytes(cfg, big, g) for g in tgt.grids), f"Profiling {tgt.name} at batch {big}",
                     "Use smaller batch sizes with --batch.")
    check_writable_dir(out_dir)
    prof = None
    if profile:
        from ..profiles import load_profile

        prof = load_profile(profile)
    for key in backend_list:  # each backend named can run here (TensorRT: the profile's), before any model is made
        be = backend(key)
        if be.missing() or be.runs == "engine":
            be.require(prof, f"time {be.title} (lookupvit latency --backend {be.name})")
    return ProfileRequest(
        targets=[tgt], precisions=chosen, batches=batch_list, backends=backend_list,
        baseline=None if baseline == "none" else baseline, settings=settings or SweepSettings(), optimize=optimize,
        profile=prof,
        peak_sizes=parse_batches(peak_sizes, "--peak-sizes") if peak_sizes is not None else None,
    )


def build_spec(req: ProfileRequest) -> SweepSpec:
    """The sweep's models: each target, plus its ViT baseline (once, shared by targets of one width)."""
    from ..backends.registry import backend

    keys = tuple(dict.fromkeys(backend(b).key for b in req.backends))  # any spelling; unknown ones refused
    models: list[SweepModel] = []
    baselines: dict[str, SweepModel] = {}
    for t in req.targets:
        base = None
        if t.is_lookupvit and req.baseline is not None:
            base = default_baseline(t.variant) if req.baseline == "auto" else req.baseline  # type: ignore[arg-type]
            if base is not None:
                cfg = get_variant(base).config
                if cfg.default_grids:
                    raise UserError(f"--baseline {base} is a LookupViT; the baseline is a plain ViT.", "Use e.g. --baseline vit_b16.")
                mine = get_variant(t.variant).config  # type: ignore[arg-type]
                if cfg.input_shape != mine.input_shape:
                    raise UserError(
                        f"--baseline {base} takes inputs {cfg.input_shape}, {t.name} takes {mine.input_shape}.",
                        "Compare with a ViT of the same input size.",
                    )
                baselines.setdefault(base, SweepModel(base, base, (None,), is_baseline=True))
        models.append(SweepModel(t.name, t.variant, t.grids, base))
    names = [m.name for m in models]
    for name, m in baselines.items():
        if name not in names:
            models.append(m)
        else:  # a ViT target that is also a baseline: time it as the baseline only
            models = [x if x.name != name else m for x in models]
    return SweepSpec(tuple(models), req.precisions, req.batches, keys, req.settings)


def make_timer_factory(req: ProfileRequest, artefacts: Any, threads: int) -> Callable[[Cell], Timer]:
    """Cells -> timers, loading each model from the run folder's artefacts (made on demand)."""
    from ..export import load_source
    from ..validate import reference_source

    targets = {t.name: t for t in req.targets}
    engine_reason: dict[str, str] = {}  # model -> why its engines cannot be made
    missing: dict[str, str] = {}  # backend key -> why it cannot run here

    def input_shape(cell: Cell) -> tuple[int, ...]:
        if cell.variant:
            return tuple(get_variant(cell.variant).config.input_shape)
        t = targets.get(cell.model)
        if t is not None and t.kind == "onnx" and t.path is not None:
            import json

            from ..export import read_metadata

            shape = read_metadata(t.path).get("input_shape")
            if shape:
                return tuple(json.loads(shape))
        raise Unsupported(f"the input shape of {cell.model} is unknown (no lookupvit metadata)")

    def make(cell: Cell) -> Timer:
        """The backend's timer over the artefact it runs (exporter/backends/registry.py): the PyTorch
        module, the graph converted for ONNX Runtime, or the engine; a given file as it is."""
        from ..backends.registry import Timing, backend

        be = backend(cell.backend)
        t = targets.get(cell.model)
        given = t if t is not None and t.path is not None else None
        shape = input_shape(cell)  # before any model is made: a cell whose input is unknown is refused first
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if given is not None and given.kind == "engine" and be.runs != "engine":
                    raise Unsupported("an engine runs on TensorRT only")
                if be.key not in missing:  # asked once per backend: the same for every cell
                    missing[be.key] = be.missing()
                if missing[be.key]:
                    raise Unsupported(missing[be.key])
                why = be.precision_reason(cell.precision) if given is None else None
                if why:
                    raise Unsupported(why)
                model, fed = _artefact(be.runs, cell, given)
                hint = req.profile.benchmark.hint if req.profile is not None else "latency"  # OpenVINO's; others ignore it
                return be.timer(model, Timing(cell.batch, shape, cell.precision, cell.grid, fed,
                                              cell.threads or threads, hint))  # a cell's own count: a thread trial's (sweep.py)
        except UserError as e:
            raise Unsupported(e.message) from None
        except Unsupported:
            raise
        except Exception as e:  # a stage that breaks fails this cell, not the sweep
            from ..pipeline.manifest import error_text

            raise StageFailed(error_text(e)) from None

    def _artefact(runs: str, cell: Cell, given: Target | None) -> tuple[Any, Any]:
        """The model a backend runs for ``cell`` and the grid fed as an input (None: the grid is fixed);
        ``given``: a target file (its path set)."""
        path = given.path if given is not None else None
        if runs == "module":
            if given is not None and given.kind == "onnx" and path is not None:
                return load_source(reference_source(path)).module, None
            if given is not None or not cell.variant:
                raise Unsupported("no PyTorch model for this file")
            return artefacts.torch_module(cell.variant), None
        fed = cell.grid if given is not None and given.dynamic_grid else None  # a given dynamic-grid file or engine
        if runs == "graph":
            if given is not None:  # timed as given
                return given.path, fed
            return artefacts.converted(cell.model, cell.grid, cell.precision), artefacts.fed_grid(cell.model, cell.grid)
        if given is not None and given.kind == "engine":
            return given.path, fed
        if given is not None and path is not None:  # an engine built from the file as given
            if req.profile is None:
                raise Unsupported("a TensorRT engine needs a GPU profile: pass --profile NAME")
            return artefacts.engine_of(path, given.precision, artefacts.folder(given.name, None)), fed
        if cell.model in engine_reason:
            raise Unsupported(engine_reason[cell.model])
        try:
            return artefacts.engine(cell.model, cell.grid, cell.precision), artefacts.fed_grid(cell.model, cell.grid)
        except CannotRunHere as e:  # the same for every cell of the model: say it once
            engine_reason[cell.model] = e.message
            raise Unsupported(e.message) from None

    return make


def write_sweep(result: SweepResult, out_dir: str | Path, accuracy: list[AccuracyPoint] | None = None) -> tuple[Path, list[Path]]:
    """``out_dir/latency.json`` and the plots in ``out_dir/plots``."""
    from ..io import write_json

    out_dir = Path(out_dir)
    plots = plot_all(result, out_dir / PLOTS_DIR, accuracy)
    path = write_json(out_dir / LATENCY_JSON, {**result.to_dict(), "plots": [str(p.relative_to(out_dir)) for p in plots]})
    return path, plots


def evaluate_accuracy(targets: list[Target], say: Callable[[str], None]) -> list[AccuracyPoint]:
    """PyTorch fp32 top-1 on the held-out digits, per grid, for targets that ship trained weights."""
    from ..data import load_data
    from ..evaluate import evaluate

    points: list[AccuracyPoint] = []
    for t in targets:
        if t.kind != "variant" or not t.variant or get_variant(t.variant).weights is None or not t.is_lookupvit:
            continue
        from ..models import create_model

        cfg = get_variant(t.variant).config
        say(f"evaluating {t.variant} on the digits")
        result = evaluate(create_model(t.variant), load_data("digits", cfg), [g for g in t.grids if g])
        points += [AccuracyPoint(t.name, r.grid, "fp32", r.top1, "evaluate (PyTorch fp32, digits held-out)", r.total)
                   for r in result.rows]
    return points


def accuracy_from_compare(path: str | Path, model: str) -> list[AccuracyPoint]:
    """Top-1 per grid and precision from a ``lookupvit compare`` JSON (``accuracy.json``)."""
    import json

    try:
        data = json.loads(Path(path).read_text())
        cells = data["cells"]
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path} is not a `lookupvit compare` result.", "Pass the accuracy.json that `lookupvit compare` wrote.") from None
    backend = data.get("backend", "")
    return [
        AccuracyPoint(model, str(c["grid"]), str(c["precision"]), float(c["top1"]), f"compare ({backend})",
                      c.get("samples") if isinstance(c.get("samples"), int) else None)
        for c in cells if c.get("top1") is not None
    ]


def grid_text(grids: tuple[Grid | None, ...]) -> str:
    return ",".join(grid_label(g) if g else "-" for g in grids)


def profile_latency(
    req: ProfileRequest,
    out_dir: str | Path,
    accuracy: list[AccuracyPoint] | None = None,
    say: Callable[[str], None] | None = None,
) -> tuple[SweepResult, Path, list[Path]]:
    """Make the models, run the sweep, write ``latency.json`` and the plots into ``out_dir``."""
    from ..pipeline.artefacts import Artefacts, ChainSettings
    from ..pipeline.manifest import Manifest
    from ..pipeline.unit import GridSet
    from .sweep import resolve_threads

    say = say or (lambda _t: None)
    out_dir = Path(out_dir)
    spec = build_spec(req)
    trt_profile = req.profile if req.profile is not None and req.profile.is_tensorrt else None  # else graphs for ONNX Runtime
    artefacts = Artefacts(out_dir, ChainSettings(optimize=req.optimize, profile=trt_profile), Manifest(out_dir), say)
    for t in req.targets:
        if t.kind == "variant" and t.dynamic_grid:  # one dynamic-grid graph per precision serves its grids
            artefacts.share(t.name, GridSet.of(t.grids))
    threads = resolve_threads(req.settings.threads)
    factory = make_timer_factory(req, artefacts, threads)
    result = run_sweep(spec, factory, progress=say, measure_peak_sizes=req.peak_sizes)
    path, plots = write_sweep(result, out_dir, accuracy)
    return result, path, plots


__all__ = [
    "LATENCY_JSON", "PLOTS_DIR", "AccuracyPoint", "ProfileRequest", "Target", "Unsupported", "accuracy_from_compare",
    "build_spec", "default_baseline", "evaluate_accuracy", "make_timer_factory", "parse_batches", "parse_list",
    "precisions_for", "profile_latency", "resolve_target", "write_sweep",
]
