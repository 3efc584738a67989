"""Where a model to export (or to use as the PyTorch reference) comes from: a registered variant or
a user factory ``pkg.module:factory``.

The ``--model pkg.module:factory`` contract (a LookupViT written by someone else):

- ``factory`` is importable as ``module:attribute``. It is called as ``factory(grid=(gh, gw))`` when
  it takes a ``grid`` parameter (so that the compressed grid can be chosen), else as ``factory()``.
- It returns a ``torch.nn.Module`` mapping a float32 image batch (B, C, H, W) to logits (B, K).
- The input size is ``--image-size`` (default: the module's ``image_size`` attribute, else 224);
  the channel count is the module's ``in_chans`` attribute, else 3. Mean/std come from the
  module's ``mean``/``std`` attributes, else the ImageNet values.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..data import InputSpec
from ..errors import UserError
from ..models import create_model, get_variant, grid_label, parse_grid, weights_id
from ..models.config import IMAGENET_MEAN, IMAGENET_STD, Grid


@dataclass
class ModelSource:
    """A model to export, fully described by plain data (stored in ONNX metadata and sidecars)."""

    variant: str | None = None  # a registered variant ...
    factory: str | None = None  # ... or "pkg.module:factory"
    weights: str | None = None  # checkpoint path; None: shipped weights or seeded init
    grid: Grid | None = None  # None for a ViT (no compressed grid)
    image_size: int | None = None  # None: the model's own
    head: str = "logits"  # logits | features
    overrides: dict[str, object] = field(default_factory=dict)
    # a dynamic-grid export: the grids the `grid` input may take (docs/dynamic-grid.md);
    # () for a model with one grid fixed in the graph
    grids: tuple[Grid, ...] = ()

    @property
    def dynamic_grid(self) -> bool:
        return bool(self.grids)

    @property
    def name(self) -> str:
        if self.variant:
            return self.variant
        module, _, attr = (self.factory or "model:build").partition(":")
        return f"{module.split('.')[-1]}_{attr}"  # e.g. "einsum_lookupvit_build"

    def file_stem(self) -> str:
        stem = self.name if self.head == "logits" else f"{self.name}_features"
        if self.grids:
            return f"{stem}_gdynamic"
        return f"{stem}_g{grid_label(self.grid)}" if self.grid else stem

    def weights_id(self) -> str:
        """Content hash of the weights actually loaded, or how the parameters were made."""
        return weights_id(self.variant, self.weights)


@dataclass
class LoadedModel:
    module: nn.Module
    input_shape: tuple[int, ...]  # one sample, e.g. (3, 224, 224)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    output_names: list[str]

    def input_spec(self) -> InputSpec:
        return InputSpec(self.input_shape, self.mean, self.std)


def resolve_variant_source(
    variant: str,
    weights: str | None = None,
    grid: str | Grid | None = None,
    image_size: int | None = None,
    head: str = "logits",
) -> ModelSource:
    """Check a variant request (name, grid fits, head makes sense) and describe it as a source."""
    base = get_variant(variant).config
    overrides: dict[str, object] = {}
    if image_size is not None and image_size != base.image_size:
        overrides["image_size"] = image_size
    cfg = base.replace(**overrides)
    is_lookupvit = hasattr(cfg, "pool")
    if head == "features":
        if not is_lookupvit:
            raise UserError(f"{variant} is a ViT baseline; it has no feature head.", "Use --head logits.")
        overrides["head"] = "features"
    the_grid: Grid | None = None
    if is_lookupvit:
        the_grid = parse_grid(grid, cfg.lookup_grid) if grid is not None else cfg.default_grids[-1]
    elif grid is not None:
        raise UserError(f"{variant} is a ViT baseline; it has no compressed grid.", "Drop --grid/--grids.")
    if weights is not None and not Path(weights).is_file():
        raise UserError(f"Weights file {weights} does not exist.", "Pass an existing .safetensors or .pt file.")
    return ModelSource(variant, None, weights, the_grid, image_size, head, overrides)


MAX_GRIDS = 64  # grids one dynamic-grid model may serve (each costs one check-table entry and one TensorRT profile)


def dynamic_grid_source(src: ModelSource, grids: list[Grid]) -> ModelSource:
    """``src`` (one grid, from :func:`resolve_variant_source`) as a dynamic-grid source serving ``grids``."""
    if src.factory or src.grid is None:
        raise UserError(
            f"--dynamic-grid needs a registered LookupViT variant; {src.name} has no compressed grid to choose.",
            "Export a LookupViT variant, or drop --dynamic-grid (one file per grid).",
        )
    allowed = tuple(sorted(set(grids)))
    if not 1 <= len(allowed) <= MAX_GRIDS:
        raise UserError(f"--dynamic-grid serves 1 to {MAX_GRIDS} grids; got {len(allowed)}.",
                        "List the grids to serve, e.g. --grids 1,2,3,4,6.")
    return ModelSource(src.variant, None, src.weights, None, src.image_size, src.head, dict(src.overrides), allowed)


def export_sources(variant: str | None, factory: str | None = None, weights: str | None = None,
                   grids: str | None = None, image_size: int | None = None, head: str = "logits",
                   dynamic_grid: bool = False) -> list[ModelSource]:
    """What ``lookupvit export`` exports: one source per grid of ``grids`` ("3,5,7" or "4x7x7"; default
    the variant's largest), of a registered ``variant`` or a ``factory`` (exactly one); with
    ``dynamic_grid`` one source serving them all (default: the variant's default grids). A grid named
    twice (``3,3x3``) is exported once."""
    if bool(variant) == bool(factory):
        raise UserError("Give either a VARIANT or --model PKG.MODULE:FACTORY (exactly one).",
                        "Run `lookupvit variants` for the registered names.")
    specs: list[str | None] = [s for s in (grids or "").split(",") if s.strip()] or [None]
    if factory:
        if dynamic_grid:
            raise UserError("--dynamic-grid needs a registered variant; a --model factory is exported per grid.",
                            "Drop --dynamic-grid, or export a registered LookupViT variant.")
        sources = [ModelSource(None, factory, weights, _factory_grid(s), image_size, head) for s in specs]
    else:
        assert variant is not None
        if dynamic_grid and not grids:  # the variant's default grids
            specs = ["x".join(map(str, g)) for g in getattr(get_variant(variant).config, "default_grids", ())] or [None]
        sources = [resolve_variant_source(variant, weights, s, image_size, head) for s in specs]
        if dynamic_grid:
            sources = [dynamic_grid_source(sources[0], [s.grid for s in sources if s.grid is not None])]
    return list({s.file_stem(): s for s in sources}.values())


def _factory_grid(spec: str | None) -> Grid | None:
    """A --model grid: "7" -> (7, 7); "5x7" -> (5, 7). The factory's model checks that it fits."""
    from ..models.config import read_grid_spec

    if spec is None:
        return None
    g = read_grid_spec(spec)
    return g * 2 if len(g) == 1 else g


def load_source(src: ModelSource) -> LoadedModel:
    """Instantiate the model described by ``src`` in eval mode, with its grid set."""
    if src.factory:
        return _load_factory(src)
    assert src.variant is not None
    model = create_model(src.variant, weights=src.weights, **src.overrides)
    if src.grid is not None or src.grids:
        model.set_grid(src.grid or src.grids[-1])  # a dynamic-grid model's reference: set per grid
    cfg = model.cfg
    outputs = ["lookup_tokens", "compressed_tokens"] if src.head == "features" else ["logits"]
    return LoadedModel(model, cfg.input_shape, tuple(cfg.mean), tuple(cfg.std), outputs)


def import_factory(ref: str):
    """Import ``pkg.module:factory`` and return the callable, with clear errors."""
    if ":" not in ref:
        raise UserError(
            f"--model {ref!r} is not of the form pkg.module:factory.",
            "Name a module and a callable in it, e.g. --model mypkg.lookup:build_model.",
        )
    module_name, attr = ref.split(":", 1)
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: the working directory is importable
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise UserError(
            f"Cannot import module {module_name!r} for --model: {type(e).__name__}: {e}",
            "Check the module name and that it is on PYTHONPATH (or run from the folder holding it).",
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(
            f"{module_name} has no callable {attr!r}.",
            "--model must name a function or class that returns a torch.nn.Module.",
        )
    return factory


def _load_factory(src: ModelSource) -> LoadedModel:
    assert src.factory is not None
    factory = import_factory(src.factory)
    try:
        takes_grid = "grid" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_grid = False
    try:
        module = factory(grid=tuple(src.grid)) if takes_grid and src.grid else factory()
    except Exception as e:
        raise UserError(f"--model {src.factory} raised {type(e).__name__}: {e}") from None
    if not isinstance(module, nn.Module):
        raise UserError(
            f"--model {src.factory} returned {type(module).__name__}, not a torch.nn.Module.",
            "The factory must return an nn.Module mapping images (B, C, H, W) to logits (B, K).",
        )
    module.eval()
    if src.weights:
        from ..models.weights import load_weights

        load_weights(module, src.weights)
    size = src.image_size or int(getattr(module, "image_size", 224))
    shape = (int(getattr(module, "in_chans", 3)), size, size)
    with torch.inference_mode():
        try:
            out = module(torch.zeros(2, *shape))
        except Exception as e:
            raise UserError(
                f"--model {src.factory} fails on a (2, {shape[0]}, {size}, {size}) batch: {type(e).__name__}: {e}",
                "Give the image size it expects with --image-size, or fix the module.",
            ) from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        got = type(out).__name__ if not isinstance(out, torch.Tensor) else f"a tensor of shape {tuple(out.shape)}"
        raise UserError(
            f"--model {src.factory} returned {got} for a batch of 2 images; expected logits (2, K).",
            "The module must map images (B, C, H, W) to logits (B, K).",
        )
    mean = tuple(getattr(module, "mean", IMAGENET_MEAN if shape[0] == 3 else (0.5,) * shape[0]))
    std = tuple(getattr(module, "std", IMAGENET_STD if shape[0] == 3 else (0.5,) * shape[0]))
    return LoadedModel(module, shape, mean, std, ["logits"])


def source_to_json(src: ModelSource) -> str:
    return json.dumps(
        {
            "variant": src.variant, "factory": src.factory, "weights": src.weights,
            "grid": list(src.grid) if src.grid else None, "image_size": src.image_size,
            "head": src.head, "overrides": src.overrides,
            **({"grids": [list(g) for g in src.grids]} if src.grids else {}),
        },
        sort_keys=True,
    )

