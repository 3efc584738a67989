"""The ``lookupvit.*`` metadata of an ONNX model, read as data and validated before any use.

An ONNX file is untrusted input: anyone can write its ``metadata_props``. Reading them therefore
never runs code and never sizes an allocation from an unchecked value:

- every value is parsed with its type and bounds (grid, input shape, mean/std, opset, precision,
  weights id), and a bad value is a user error naming the key;
- a recorded source's config ``overrides`` are checked against the variant's config schema (known
  field, the field's type, per-field bounds), the config is built (its own checks run), and the
  model it describes is bounded in size (:data:`MAX_PARAMS`) before anything is instantiated;
- a dynamic-grid model's ``grids`` (at most :data:`MAX_GRIDS`, each a bounded grid of one rank)
  and ``grid_input`` (name, dtype float32, one size or symbolic name per grid axis) are checked the
  same way (docs/dynamic-grid.md);
- a recorded factory (``pkg.module:factory``, from ``export --model``) is reported, never imported:
  importing it would execute the module's code. The PyTorch reference of such a model is rebuilt
  only when the user names the factory on the command line with ``--model``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..models.config import Grid
from ..onnx_io import load_onnx, lookupvit_metadata
from .grid_input import AXIS_NAMES, GRID_INPUT_DTYPE, GridInput
from .source import MAX_GRIDS, ModelSource

MAX_PARAMS = 2_000_000_000  # 8 GB of fp32 weights; the largest registered variant has 0.51 G
MAX_SIDE = 4096  # pixels per image side; also bounds grid axes
MAX_FRAMES = 512
MAX_CHANNELS = 16
MAX_SOURCE_CHARS = 16_384
FACTORY_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
WEIGHTS_ID_RE = re.compile(r"^(sha256:[0-9a-f]{64}|seed:\d{1,10})$")
GRID_RE = re.compile(r"^\d{1,4}(x\d{1,4}){1,2}$")
SOURCE_KEYS = frozenset({"variant", "factory", "weights", "grid", "image_size", "head", "overrides", "grids"})
INPUT_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# Per-field bounds of config overrides (inclusive); fields not listed here keep only their type check.
OVERRIDE_BOUNDS: dict[str, tuple[float, float]] = {
    "image_size": (1, MAX_SIDE), "patch_size": (1, MAX_SIDE), "in_chans": (1, MAX_CHANNELS),
    "num_classes": (0, 1_000_000), "dim": (1, 16_384), "depth": (1, 256), "heads": (1, 256),
    "mlp_ratio_lookup": (0.0, 64.0), "mlp_ratio_compressed": (0.0, 64.0), "mlp_ratio": (0.0, 64.0),
    "frames": (1, MAX_FRAMES), "tubelet": (1, MAX_FRAMES), "ln_eps": (0.0, 1.0),
}


@dataclass(frozen=True)
class ModelMetadata:
    """What an ONNX model written by this tool declares about itself, every value checked."""

    path: Path
    variant: str | None = None
    factory: str | None = None  # recorded only; never imported from here
    grid: Grid | None = None
    image_size: int | None = None
    input_shape: tuple[int, ...] | None = None  # one sample, e.g. (3, 224, 224)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    opset: int | None = None
    head: str = "logits"
    precision: str = "fp32"
    weights_id: str | None = None  # "sha256:<hex>" of the checkpoint, or "seed:0"
    source: ModelSource | None = None
    grids: tuple[Grid, ...] = ()  # a dynamic-grid model: the grids its grid input may take
    grid_input: GridInput | None = None
    raw: Mapping[str, str] = field(default_factory=dict)  # every lookupvit.* entry, as text

    @property
    def dynamic_grid(self) -> bool:
        return bool(self.grids)

    @property
    def has_metadata(self) -> bool:
        return bool(self.raw)


def _bad(path: Path, key: str, value: object, why: str) -> UserError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return UserError(
        f"{path} carries invalid metadata: lookupvit.{key} = {shown} ({why}).",
        "The file was not written by `lookupvit export` or was edited afterwards. Re-export the model, or name "
        "its reference explicitly with --reference VARIANT (and --weights FILE).",
    )


def _json(path: Path, key: str, text: str) -> Any:
    """A JSON metadata value, bounded in size and nesting before it is parsed (exporter.schema)."""
    from ..schema import SchemaError, parse_json_text

    try:
        return parse_json_text(text, path, max_bytes=MAX_SOURCE_CHARS)
    except SchemaError as e:
        why = e.message.split(": ", 1)[-1].rstrip(".")
        raise _bad(path, key, text, "not valid JSON" if why.startswith("not valid JSON") else why) from None


def _checked(path: Path, key: str, text: str, adapter: Any) -> Any:
    """``text`` parsed and validated by the schema layer's type for ``lookupvit.<key>``."""
    from pydantic import ValidationError

    value = _json(path, key, text)
    try:
        return adapter.validate_python(value)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        at = "".join(f"[{i}]" if isinstance(i, int) else f".{i}" for i in err["loc"])
        msg = str(err["msg"])
        raise _bad(path, key, text, f"{'item ' + at + ': ' if at else ''}{msg[0].lower() + msg[1:]}") from None


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _read_grid(path: Path, key: str, value: object) -> Grid:
    if isinstance(value, str):
        if not GRID_RE.match(value):
            raise _bad(path, key, value, "a grid is 2 or 3 sizes joined by 'x', e.g. 7x7 or 4x7x7")
        grid = tuple(int(v) for v in value.split("x"))
    elif isinstance(value, list) and len(value) in (2, 3) and all(_is_int(v) for v in value):
        grid = tuple(value)
    else:
        raise _bad(path, key, value, "a grid is a list of 2 or 3 integers")
    if not all(1 <= g <= MAX_SIDE for g in grid):
        raise _bad(path, key, value, f"each grid axis must be between 1 and {MAX_SIDE}")
    return grid


def _read_grids(path: Path, key: str, value: object) -> tuple[Grid, ...]:
    """A list of grids of one rank, at most MAX_GRIDS: "1x1,2x2" (metadata) or [[1, 1], [2, 2]] (source)."""
    items = value.split(",") if isinstance(value, str) and len(value) <= 16 * MAX_GRIDS else value
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_GRIDS:
        raise _bad(path, key, value, f"expected 1 to {MAX_GRIDS} grids")
    grids = tuple(_read_grid(path, key, g) for g in items)
    if len({len(g) for g in grids}) != 1 or len(set(grids)) != len(grids):
        raise _bad(path, key, value, "the grids must be distinct and have the same number of axes")
    return grids


def _read_grid_input(path: Path, text: str, grids: tuple[Grid, ...]) -> GridInput:
    """The grid input's contract: a name, dtype float32, per axis the shared size or the axis's name."""
    v = _json(path, "grid_input", text) if len(text) <= 512 else None
    if not isinstance(v, dict) or set(v) != {"name", "dtype", "shape"}:
        raise _bad(path, "grid_input", text, "expected a JSON object with name, dtype and shape")
    name, dtype, shape = v["name"], v["dtype"], v["shape"]
    if not isinstance(name, str) or not INPUT_NAME_RE.match(name):
        raise _bad(path, "grid_input", text, "name must be an identifier of at most 64 characters")
    if dtype != GRID_INPUT_DTYPE:
        raise _bad(path, "grid_input", text, f"dtype must be {GRID_INPUT_DTYPE}")
    rank = len(grids[0]) if grids else 0
    if not isinstance(shape, list) or len(shape) != rank:
        raise _bad(path, "grid_input", text, f"shape must have one entry per grid axis ({rank})")
    for i, d in enumerate(shape):
        fixed = _is_int(d) and all(g[i] == d for g in grids)
        if not fixed and d != AXIS_NAMES[rank][i]:
            raise _bad(path, "grid_input", text, f"axis {i} must be {AXIS_NAMES[rank][i]!r} or the size every grid has")
    return GridInput(name, dtype, tuple(shape))


def _read_int(path: Path, key: str, value: object, lo: int, hi: int) -> int:
    try:
        n = int(value) if isinstance(value, str) and value.strip().isdigit() else value
    except ValueError:
        n = None
    if not _is_int(n) or not lo <= n <= hi:  # type: ignore[operator]
        raise _bad(path, key, value, f"expected an integer between {lo} and {hi}")
    return int(n)  # type: ignore[arg-type]


def _read_floats(path: Path, key: str, text: str, n: int | None) -> tuple[float, ...]:
    """``mean`` (finite numbers) or ``std`` (finite numbers above 0), one per input channel."""
    from ..schema.metadata import MEAN, STD

    v = _checked(path, key, text, STD if key == "std" else MEAN)
    if n is not None and len(v) != n:
        raise _bad(path, key, text, f"expected {n} finite numbers, one per input channel")
    return tuple(float(x) for x in v)


def _read_shape(path: Path, text: str) -> tuple[int, ...]:
    from pydantic import ValidationError

    from ..schema.metadata import INPUT_SHAPE

    v = _json(path, "input_shape", text)
    try:
        INPUT_SHAPE.validate_python(v)
    except ValidationError:
        if isinstance(v, list) and len(v) in (3, 4) and all(_is_int(x) and x >= 1 for x in v):
            pass  # in shape, but a side too large: the message below names the bounds
        else:
            raise _bad(path, "input_shape", text, "expected [C, H, W] or [C, T, H, W] of positive integers") from None
    if v[0] > MAX_CHANNELS or any(x > MAX_SIDE for x in v[-2:]) or (len(v) == 4 and v[1] > MAX_FRAMES):
        raise _bad(
            path, "input_shape", text,
            f"at most {MAX_CHANNELS} channels, {MAX_FRAMES} frames and {MAX_SIDE} pixels per side",
        )
    return tuple(v)


def source_from_metadata(text: str, path: Path) -> ModelSource:
    """The recorded :class:`ModelSource`, validated against the schema; nothing is imported."""
    if len(text) > MAX_SOURCE_CHARS:
        raise _bad(path, "source", text, f"longer than {MAX_SOURCE_CHARS} characters")
    d = _json(path, "source", text)
    if not isinstance(d, dict):
        raise _bad(path, "source", text, "expected a JSON object")
    unknown = sorted(set(d) - SOURCE_KEYS)
    if unknown:
        raise _bad(path, "source", text, f"unknown key(s) {', '.join(unknown)}")
    variant, factory, weights = d.get("variant"), d.get("factory"), d.get("weights")
    if (variant is None) == (factory is None):
        raise _bad(path, "source", text, "exactly one of variant and factory must be set")
    if factory is not None and (not isinstance(factory, str) or not FACTORY_RE.match(factory)):
        raise _bad(path, "source", text, "factory must read pkg.module:callable")
    if weights is not None and (not isinstance(weights, str) or not 0 < len(weights) <= 4096):
        raise _bad(path, "source", text, "weights must be a file path")
    head = d.get("head", "logits")
    if head not in ("logits", "features"):
        raise _bad(path, "source", text, "head must be logits or features")
    grid = None if d.get("grid") is None else _read_grid(path, "source.grid", d["grid"])
    image_size = None if d.get("image_size") is None else _read_int(path, "source.image_size", d["image_size"], 1, MAX_SIDE)
    overrides = d.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise _bad(path, "source", text, "overrides must be a JSON object")
    grids = () if d.get("grids") is None else _read_grids(path, "source.grids", d["grids"])
    if grids and grid is not None:
        raise _bad(path, "source", text, "a source has a grid or grids, not both")
    if factory is not None:
        if overrides or grids:
            raise _bad(path, "source", text, "a factory source takes no config overrides and no grids")
        return ModelSource(None, factory, weights, grid, image_size, head, {})
    if not isinstance(variant, str):
        raise _bad(path, "source", text, "variant must be a name")
    overrides = check_overrides(path, variant, overrides, grid)
    for g in grids:
        check_overrides(path, variant, overrides, g)
    return ModelSource(variant, None, weights, grid, image_size, head, overrides, grids)


def check_overrides(path: Path, variant: str, overrides: dict[str, Any], grid: Grid | None) -> dict[str, object]:
    """Overrides valid for ``variant``'s config: known fields, their types, bounds, a bounded model."""
    from ..models import get_variant
    from ..models.config import check_grid
    from ..models.cost import model_cost

    try:
        base = get_variant(variant).config
    except UserError as e:
        raise _bad(path, "source.variant", variant, e.message) from None
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    clean: dict[str, object] = {}
    for key, value in overrides.items():
        if key not in fields or key in ("default_grids",):
            raise _bad(path, f"source.overrides.{key}", value, f"not an overridable field of {variant}")
        default = fields[key]
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = _is_int(value)
        elif isinstance(default, float):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        elif isinstance(default, str):
            ok = isinstance(value, str) and len(value) <= 64
        elif isinstance(default, tuple):
            ok = isinstance(value, list) and len(value) <= MAX_CHANNELS and all(
                isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value
            )
            value = tuple(value) if ok else value
        else:
            ok = False
        if not ok:
            raise _bad(path, f"source.overrides.{key}", value, f"expected a {type(default).__name__}")
        lo, hi = OVERRIDE_BOUNDS.get(key, (-math.inf, math.inf))
        if isinstance(value, int | float) and not lo <= value <= hi:
            raise _bad(path, f"source.overrides.{key}", value, f"must be between {lo} and {hi}")
        clean[key] = value
    try:
        cfg = base.replace(**clean)
        if grid is not None and hasattr(cfg, "pool"):
            check_grid(grid, cfg.lookup_grid)
        params = model_cost(cfg, grid if hasattr(cfg, "pool") else None).params
    except UserError as e:
        raise _bad(path, "source.overrides", overrides, e.message) from None
    if params > MAX_PARAMS:
        raise _bad(
            path, "source.overrides", overrides,
            f"describes a model of {params / 1e9:.1f} G parameters, above the {MAX_PARAMS / 1e9:.0f} G this tool builds",
        )
    return clean


def parse_metadata(meta: Mapping[str, str], path: Path) -> ModelMetadata:
    """Type and bound every ``lookupvit.*`` entry of ``path`` (already read as text)."""
    from ..precisions import PRECISIONS

    shape = _read_shape(path, meta["input_shape"]) if meta.get("input_shape") else None
    channels = shape[0] if shape else None
    precision = meta.get("precision") or "fp32"
    if precision not in PRECISIONS:
        raise _bad(path, "precision", precision, f"not one of {', '.join(PRECISIONS)}")
    head = meta.get("head") or "logits"
    if head not in ("logits", "features"):
        raise _bad(path, "head", head, "must be logits or features")
    weights_id = meta.get("weights") or None
    if weights_id is not None and not WEIGHTS_ID_RE.match(weights_id):
        raise _bad(path, "weights", weights_id, "expected sha256:<64 hex digits> or seed:<n>")
    factory = meta.get("factory") or None
    if factory is not None and not FACTORY_RE.match(factory):
        raise _bad(path, "factory", factory, "expected pkg.module:callable")
    grids = _read_grids(path, "grids", meta["grids"]) if meta.get("grids") else ()
    if grids and not meta.get("grid_input"):
        raise _bad(path, "grids", meta["grids"], "a dynamic-grid model must also declare lookupvit.grid_input")
    if meta.get("grid_input") and not grids:
        raise _bad(path, "grid_input", meta["grid_input"], "declared without lookupvit.grids")
    grid_input = _read_grid_input(path, meta["grid_input"], grids) if meta.get("grid_input") else None
    return ModelMetadata(
        path=path,
        variant=meta.get("variant") or None,
        factory=factory,
        grid=_read_grid(path, "grid", meta["grid"]) if meta.get("grid") else None,
        image_size=_read_int(path, "image_size", meta["image_size"], 1, MAX_SIDE) if meta.get("image_size") else None,
        input_shape=shape,
        mean=_read_floats(path, "mean", meta["mean"], channels) if meta.get("mean") else None,
        std=_read_floats(path, "std", meta["std"], channels) if meta.get("std") else None,
        opset=_read_int(path, "opset", meta["opset"], 1, 1000) if meta.get("opset") else None,
        head=head,
        precision=precision,
        weights_id=weights_id,
        source=source_from_metadata(meta["source"], path) if meta.get("source") else None,
        grids=grids,
        grid_input=grid_input,
        raw=dict(meta),
    )


def read_model_metadata(path: str | Path) -> ModelMetadata:
    """Read and validate the metadata of the ONNX model at ``path`` (its weights are not loaded)."""
    path = Path(path)
    model = load_onnx(path, weights=False)
    meta = parse_metadata(lookupvit_metadata(model), path)
    if meta.grids:  # the metadata is checked against the graph's own tables (docs/security.md)
        from .grid_input import check_graph_grids

        check_graph_grids(model, meta.grids, path)
    return meta


def factory_refusal(path: Path, factory: str) -> UserError:
    """The error for a model whose reference would need a factory the user did not name."""
    return UserError(
        f"{path} was exported from the Python factory {factory} (export --model). Rebuilding its PyTorch "
        "reference means importing and running that code, and a model file's metadata never makes this tool "
        "run code.",
        f"If you trust that code, name it yourself: --model {factory} (it is imported with the working directory "
        "on the path). Or compare against a registered variant with --reference VARIANT.",
    )
