"""The one stage chain: the model files of a folder, made stage by stage, export -> optimize ->
precision -> build (docs/architecture.md, The unit of work and the one stage chain).

Layout, per model and compressed grid (a ViT has no ``g<grid>`` level)::

    DIR/<variant>/g<grid>/onnx/<variant>_g<grid>.onnx            export (+ .json sidecar)
    DIR/<variant>/g<grid>/onnx/<variant>_g<grid>.opt.onnx        optimize (graph-surgeon passes)
    DIR/<variant>/g<grid>/onnx/<variant>_g<grid>.opt.<p>.onnx    precision p (for ONNX Runtime, fp32 is the .opt graph)
    DIR/<variant>/g<grid>/engines/<profile>/....<p>.plan         build (TensorRT profiles only)

A dynamic-grid graph (docs/dynamic-grid.md) is one cell whose grid is a
:class:`~exporter.pipeline.unit.GridSet`: ``DIR/<variant>/gdynamic/onnx/<variant>_gdynamic.onnx``, stage ids
``export:<variant>:gdynamic``. After :meth:`Artefacts.share`, every request for one of its grids
(``converted(variant, (3, 3), "int8")``) is served by that one graph, and a caller feeding it
asks :meth:`Artefacts.fed_grid` for the grid to put on its grid input. A dynamic-grid file this
pipeline made, named by its stem (``compare DIR/.../lookupvit_digits_gdynamic.opt.onnx`` through the
same ``Artefacts``), is the same cell, so its conversions are the ones the chain made.

Every step goes through the folder's :class:`~exporter.pipeline.manifest.Manifest`, the one cache,
by the recorded steps of :mod:`.steps` (which the standalone verbs also run): a file whose inputs did
not change is not made again, and when the manifest says a stage must run, it runs. The optimize stage runs when ``exporter.passes`` provides
``optimize_model`` (unless switched off); without it the exported graph is used as it is.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CannotRunHere
from ..models import grid_label
from ..models.config import Grid
from ..precision.quantize import AUTO_CALIB
from ..profiles import Profile
from .manifest import Manifest
from .stages import BUILD, EXPORT, OPTIMIZE, PRECISION, StageKind
from .unit import CellGrid, GridSet, Unit

Say = Callable[[str], None]


def optional_function(module: str, name: str) -> Callable[..., Any] | None:
    """``module.name`` when that package is installed and provides it, else None."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    fn = getattr(mod, name, None)
    return fn if callable(fn) else None


def optimizer() -> Callable[..., Any] | None:
    return optional_function("exporter.passes", "optimize_model")


@dataclass(frozen=True)
class ChainSettings:
    optimize: bool | None = None  # None: when exporter.passes is available
    calib: str = AUTO_CALIB
    calib_size: int | None = None  # None: the precision stage's default
    profile: Profile | None = None  # for TensorRT builds
    weights: str | None = None  # a checkpoint for the variants (None: shipped weights, else seeded)


class Artefacts:
    """Makes (or finds) each model file of the run directory ``root``; see the module docstring."""

    def __init__(self, root: str | Path, settings: ChainSettings, manifest: Manifest, say: Say | None = None):
        self.root = Path(root)
        self.settings = settings
        self.manifest = manifest
        self.say = say or (lambda _t: None)
        self.imported: dict[str, Path] = {}  # model name -> a given fp32 .onnx (instead of an export)
        self.shared: dict[str, GridSet] = {}  # variant -> the grids its one dynamic-grid graph serves
        self._stems: dict[str, tuple[str, GridSet]] = {}  # a dynamic-grid file's stem -> its cell
        self._modules: dict[str, Any] = {}
        self._target: Any = None  # exporter.backends.tensorrt.env.BuildTarget, once asked

    # --- dynamic-grid graphs ---------------------------------------------------------------------

    def share(self, model: str, grids: GridSet) -> None:
        """Serve every grid of ``grids`` of ``model`` from one dynamic-grid graph (see the module docstring)."""
        self.shared[model] = grids
        stem = self.export_path(model, grids).name.removesuffix(".onnx")
        self._stems[stem] = self._stems[f"{stem}.opt"] = (model, grids)

    def _cell(self, model: str, grid: CellGrid) -> tuple[str, CellGrid]:
        """The cell that makes (model, grid): a shared dynamic-grid graph for one of its grids."""
        if grid is None and model in self._stems:
            return self._stems[model]
        if isinstance(grid, tuple) and model in self.shared and grid in self.shared[model]:
            return model, self.shared[model]
        return model, grid

    def cell_grid(self, model: str, grid: CellGrid) -> CellGrid:
        """The grid of the cell that makes (model, grid): its :class:`GridSet` when a shared graph serves it."""
        return self._cell(model, grid)[1]

    def fed_grid(self, model: str, grid: CellGrid) -> Grid | None:
        """The grid a runner feeds to the grid input of the graph serving (model, grid); None when
        that graph has its grid fixed."""
        return grid if isinstance(grid, tuple) and isinstance(self._cell(model, grid)[1], GridSet) else None

    # --- layout ----------------------------------------------------------------------------------

    def folder(self, model: str, grid: CellGrid) -> Path:
        return Unit(*self._cell(model, grid)).folder(self.root)

    def _id(self, stage: StageKind, model: str, grid: CellGrid, precision: str | None = None, *extra: str) -> str:
        return Unit(*self._cell(model, grid), precision).stage_id(stage, *extra)

    def _source(self, model: str, grid: CellGrid, weights: str | None = None) -> Any:
        from ..export import dynamic_grid_source, resolve_variant_source

        if isinstance(grid, GridSet):
            return dynamic_grid_source(resolve_variant_source(model, weights, grid=grid.grids[-1]), list(grid.grids))
        return resolve_variant_source(model, weights, grid=grid)

    @property
    def optimizing(self) -> bool:
        return self.settings.optimize is not False and optimizer() is not None

    # --- stages ----------------------------------------------------------------------------------

    def export_path(self, model: str, grid: CellGrid) -> Path:
        """Where the exported fp32 graph is (or will be); makes nothing."""
        model, grid = self._cell(model, grid)
        if model in self.imported:
            return self.imported[model]
        return self.folder(model, grid) / "onnx" / f"{self._source(model, grid).file_stem()}.onnx"

    @property
    def for_tensorrt(self) -> bool:
        """The chain writes graphs for TensorRT (a TensorRT profile): every precision, fp32 included,
        goes through the precision stage, which writes the attention form TensorRT builds
        (exporter/precision/tensorrt_form.py)."""
        return self.settings.profile is not None

    def optimized_path(self, model: str, grid: CellGrid) -> Path:
        """Where the optimised fp32 graph is (or will be; the exported one when optimizing is off); makes nothing."""
        model, grid = self._cell(model, grid)
        src = self.export_path(model, grid)
        return self.folder(model, grid) / "onnx" / (src.name.removesuffix(".onnx") + ".opt.onnx") if self.optimizing else src

    def precision_path(self, model: str, grid: CellGrid, precision: str) -> Path:
        """Where the graph the backend runs in ``precision`` is (or will be); makes nothing."""
        base = self.optimized_path(model, grid)
        if precision == "fp32" and not self.for_tensorrt:
            return base
        return base.with_name(f"{base.name.removesuffix('.onnx')}.{precision}.onnx")

    def exported(self, model: str, grid: CellGrid) -> Path:
        """The fp32 graph straight from torch's exporter (or the given file)."""
        model, grid = self._cell(model, grid)
        if model in self.imported:
            return self.imported[model]
        from .steps import export_step

        export_step(self.manifest, self._id(EXPORT, model, grid), self._source(model, grid, self.settings.weights),
                    self.folder(model, grid) / "onnx", on_run=lambda: self.say(f"export {model} {self._grid_text(grid)}"))
        return self.export_path(model, grid)  # in this folder (the recorded path may be a copied folder's)

    def optimized(self, model: str, grid: CellGrid) -> Path:
        """The graph after the optimisation passes; the exported graph when they are off or absent."""
        model, grid = self._cell(model, grid)
        src = self.exported(model, grid)
        if self.settings.optimize is False or optimizer() is None:
            why = "switched off (--no-optimize)" if self.settings.optimize is False else "exporter.passes is not installed"
            self.manifest.note(self._id(OPTIMIZE, model, grid), OPTIMIZE, "unavailable", why)
            return src
        from .steps import optimize_step

        def on_run() -> None:
            if not src.is_file():  # dropped by `run --keep final`: export it again first
                self.manifest.restore(self._id(EXPORT, model, grid))
                self.exported(model, grid)
            self.say(f"optimize {model} {self._grid_text(grid)}")

        out_path = self.optimized_path(model, grid)
        optimize_step(self.manifest, self._id(OPTIMIZE, model, grid), src, out_path, on_run=on_run)
        return out_path

    def converted(self, model: str, grid: CellGrid, precision: str) -> Path:
        """The graph in ``precision`` (the precision stage; for ONNX Runtime, fp32 is the optimised graph
        itself)."""
        model, grid = self._cell(model, grid)
        base = self.optimized(model, grid)
        if precision == "fp32" and not self.for_tensorrt:
            return base
        from .steps import precision_step

        out_path = self.precision_path(model, grid, precision)
        precision_step(self.manifest, self._id(PRECISION, model, grid, precision), base, out_path, precision,
                       calib=self.settings.calib, calib_size=self.settings.calib_size,
                       target="tensorrt" if self.for_tensorrt else "onnxruntime",
                       on_run=lambda: self.say(f"precision {model} {self._grid_text(grid)} -> {precision}"))
        return out_path

    def build_target(self) -> Any:
        """How this machine builds the profile's engines (:func:`exporter.backends.tensorrt.env.build_target`),
        asked once; raises :class:`CannotRunHere` where it cannot."""
        if self._target is None:
            prof = self.settings.profile
            if prof is None:
                raise CannotRunHere("A TensorRT engine needs a GPU profile.",
                                    "Pass --profile NAME (`lookupvit profiles` lists them).")
            from ..backends.tensorrt.env import build_target

            self._target = build_target(prof, f"build the engines of profile {prof.name}")
        return self._target

    def engine(self, model: str, grid: CellGrid, precision: str) -> Path:
        """A TensorRT engine of the graph in ``precision`` for the run's profile (raises
        :class:`CannotRunHere` where no TensorRT here builds for it; ahead of time with TensorRT-RTX
        where no GPU is visible); a dynamic-grid graph's engine holds one optimisation profile per
        (grid, batch) (exporter/engine/plan.py). The stage's key includes the TensorRT flavour and
        version and the target, so a folder moved to a machine that builds differently builds again,
        and one that builds the same way reuses the engine."""
        target = self.build_target()
        prof = self.settings.profile
        assert prof is not None  # build_target() refused otherwise
        from ..engine.build import prepare_build
        from .steps import build_step

        model, grid = self._cell(model, grid)
        onnx_path, out_dir = self.converted(model, grid, precision), self.folder(model, grid)
        how = "ahead of time, no GPU here" if target.ahead_of_time else target.label
        # one id per profile: a folder shared by several profiles' builds (a cluster's prepare task) keeps each
        return build_step(
            self.manifest, self._id(BUILD, model, grid, precision, prof.name), onnx_path, prof, precision,
            lambda: prepare_build(onnx_path, prof, precision, out_dir), target=target,
            on_run=lambda: self.say(f"build {model} {self._grid_text(grid)} {precision} ({prof.name}, "
                                    f"{target.choice.label}, {how})")).engine

    def engine_of(self, path: Path, precision: str | None, folder: Path) -> Path:
        """A TensorRT engine of a graph the user gave (``path``, built as it is) for the run's profile, in
        ``folder`` (inside this run folder), through the same manifest."""
        target = self.build_target()
        prof = self.settings.profile
        assert prof is not None  # build_target() refused otherwise
        from ..engine.build import prepare_build
        from .steps import build_step
        from .unit import file_stage_id

        req = prepare_build(path, prof, precision, folder)  # the precision the file declares, its engine's name
        stage_id = file_stage_id(BUILD, self.root, req.plan.engine)
        return build_step(self.manifest, stage_id, path, prof, req.precision, lambda: req, target=target,
                          on_run=lambda: self.say(f"build {path.name} {req.precision} ({prof.name})")).engine

    # --- PyTorch ---------------------------------------------------------------------------------

    def torch_module(self, model: str) -> Any:
        """The PyTorch model of a variant (one per variant; the grid is chosen per call)."""
        if model not in self._modules:
            from ..export import load_source, resolve_variant_source

            self._modules[model] = load_source(resolve_variant_source(model)).module
        return self._modules[model]

    @staticmethod
    def _grid_text(grid: CellGrid) -> str:
        if isinstance(grid, GridSet):
            return f"grids {grid.text} (one dynamic-grid graph)"
        return f"grid {grid_label(grid)}" if grid else ""
