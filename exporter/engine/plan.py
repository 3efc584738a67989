"""The pure half of an engine build: what the ONNX graph declares, the build plan, the cache key and
the output layout. Nothing here imports TensorRT, so tests check a build's arguments on any machine.

Rules relied upon:
- TensorRT 11 is strongly typed (docs/architecture.md, Precisions): the network is parsed with
  ``strongly_typed=True`` and the builder gets no fp16/int8/bf16/fp8 flags; the precision is what
  the graph declares (casts and Q/DQ pairs written by the precision stage).
- A TensorRT optimisation profile gives min/opt/max shapes per dynamic input; the LookupViT graph
  has one input whose batch (axis 0) is the only dynamic axis, so each latency-critical batch of
  the profile becomes one ``polygraphy.backend.trt.Profile`` ``(min, opt, max)`` over that axis.
- A dynamic-grid model (docs/dynamic-grid.md) has a second input, ``grid``, whose shape is
  the compressed grid. Each (grid, latency-critical batch) pair becomes one optimisation profile
  with the grid input's min = opt = max = that grid, so every grid gets kernels tuned to its sequence
  lengths while the weights are stored once; a grid outside the profiles is refused by TensorRT's
  shape check (TensorRT does not bound-check the graph's own Gather check). Profiles are ordered
  grid-major; ``BuildPlan.profile_index`` and the sidecar's ``profile_index`` list say which index
  serves which grid and batch, and a runner selects it per request (:func:`select_profile`: the
  profile whose batch range holds the request at its grid, with the smallest opt at or above the
  batch; TensorRT's ``IExecutionContext.setOptimizationProfileAsync``, Polygraphy's
  ``TrtRunner(optimization_profile=...)`` and ``TrtRunner.set_profile``).
- An engine is only valid for the GPU and TensorRT version it was built with (unless built
  hardware/version compatible), so the cache key is (ONNX sha256, profile hash, TensorRT flavour and
  version, target): the target is the GPU full TensorRT tuned on, or the compute capability
  TensorRT-RTX compiled for (docs/architecture.md, The backend axis).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..backends.tensorrt.env import TENSORRT_MODULES
from ..backends.tensorrt.profiles import ProfileEntry, select_profile
from ..backends.tensorrt.sidecar import ENGINE_SUFFIX, SIDECAR_SUFFIX
from ..errors import UserError
from ..precisions import PRECISIONS
from ..profiles import Profile, format_size, gpu_has_precision

# ONNX TensorProto element types (onnx.TensorProto.*), named here to keep this module import-light.
_INT8_TYPES = {2, 3, 21, 22}  # UINT8, INT8, UINT4, INT4
_FP8_TYPES = {17, 18, 19, 20}  # FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ
_FLOAT16, _BFLOAT16 = 10, 16
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
PRECISION_METADATA_KEYS = ("lookupvit.precision", "precision")

Dim = int | str | None


@dataclass(frozen=True)
class OnnxInput:
    """The ONNX model as a build needs it: its first input and the precision its graph declares."""

    path: Path
    input_name: str
    input_shape: tuple[Dim, ...]  # ints for static axes, the dim_param (or None) for dynamic ones
    precision: str  # declared by the graph: fp8 > int8 > bf16 > fp16 > fp32
    precision_source: str  # "metadata" or "graph"
    metadata: dict[str, str] = field(default_factory=dict)
    num_inputs: int = 1
    grid_input: str | None = None  # a dynamic-grid model: the input whose shape is the grid
    grids: tuple[tuple[int, ...], ...] = ()  # ... and the grids it allows

    @property
    def dynamic_axes(self) -> list[int]:
        return [i for i, d in enumerate(self.input_shape) if not isinstance(d, int)]


def read_onnx(path: str | Path) -> OnnxInput:
    """Read the first graph input and the declared precision of an ONNX file (weights stay on disk
    when they are external)."""
    from ..onnx_io import load_onnx

    path = Path(path)
    model = load_onnx(path, weights=False)
    g = model.graph
    initializers = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in initializers]
    if not inputs:
        raise UserError(f"{path} has no graph input.", "Export the model with its image input.")
    first = inputs[0]
    dims: list[Dim] = []
    for d in first.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    metadata = {p.key: p.value for p in model.metadata_props}
    precision, source = _declared_precision(model, metadata)
    from ..export.grid_input import dynamic_grid_input

    grid = dynamic_grid_input(model, path)  # validated metadata (names, grids bounded), checked against the graph
    grid_input, grids = grid if grid is not None else (None, ())
    return OnnxInput(path, first.name, tuple(dims), precision, source, metadata, len(inputs), grid_input, grids)


def _declared_precision(model: Any, metadata: dict[str, str]) -> tuple[str, str]:
    for key in PRECISION_METADATA_KEYS:
        if metadata.get(key) in PRECISIONS:
            return metadata[key], "metadata"
    g = model.graph
    types: set[int] = {t.data_type for t in g.initializer}
    quantized: set[int] = set()
    init_types = {t.name: t.data_type for t in g.initializer}
    for node in g.node:
        for a in node.attribute:
            if a.name in ("to", "output_dtype") and a.type == a.INT:
                types.add(a.i)
                if node.op_type in _QDQ_OPS:
                    quantized.add(a.i)
            if node.op_type == "Constant" and a.name == "value":
                types.add(a.t.data_type)
        if node.op_type in _QDQ_OPS and len(node.input) >= 3 and node.input[2] in init_types:
            quantized.add(init_types[node.input[2]])  # the zero point's type is the quantized type
        if node.op_type == "DequantizeLinear" and node.input[0] in init_types:
            quantized.add(init_types[node.input[0]])  # weights stored quantized
    if quantized & _FP8_TYPES:
        return "fp8", "graph"
    if quantized & _INT8_TYPES or any(n.op_type in _QDQ_OPS for n in g.node):
        return "int8", "graph"
    if _BFLOAT16 in types:
        return "bf16", "graph"
    if _FLOAT16 in types:
        return "fp16", "graph"
    return "fp32", "graph"


def resolve_precision(info: OnnxInput, requested: str | None, profile: Profile) -> str:
    """The precision label of the build: what the graph declares, checked against ``--precision``
    and against the profile's list."""
    precision = info.precision
    if requested is not None and requested != precision:
        raise UserError(
            f"--precision {requested} does not match {info.path.name}, whose graph declares {precision} "
            f"(from its {info.precision_source}). TensorRT builds strongly typed: the graph decides the precision.",
            f"Convert the model to {requested} first and build that file, or drop --precision.",
        )
    if precision not in profile.precisions:
        hint = f"Add \"{precision}\" to precisions in {profile.path}, or build for another profile."
        cc = profile.compute_capability
        if cc and not gpu_has_precision(cc, precision):
            hint = f"{profile.sm} has no {precision}: build one of {', '.join(profile.precisions)} for this GPU."
        raise UserError(
            f"Profile {profile.name} does not build {precision} (its precisions: {', '.join(profile.precisions)}).",
            hint,
        )
    return precision


@dataclass(frozen=True)
class ShapeProfile:
    """One TensorRT optimisation profile: min/opt/max shapes of the input."""

    input: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]
    grid_input: str | None = None  # a dynamic-grid model: its grid input, fixed to ``grid`` (min = opt = max)
    grid: tuple[int, ...] | None = None

    def inputs(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """``{input: (min, opt, max)}`` for every input this profile shapes."""
        out = {self.input: (self.min, self.opt, self.max)}
        if self.grid_input is not None and self.grid is not None:
            out[self.grid_input] = (self.grid, self.grid, self.grid)
        return out


@dataclass(frozen=True)
class BuildPlan:
    """Everything handed to Polygraphy for one engine; :mod:`.trt` turns it into TensorRT calls."""

    onnx: Path
    engine: Path
    sidecar: Path
    profile: str
    precision: str
    backend: str  # "tensorrt" or "tensorrt-rtx"
    strongly_typed: bool
    shapes: tuple[ShapeProfile, ...]
    builder_optimization_level: int
    workspace_bytes: int
    timing_cache: Path | None  # loaded before and saved after the build; None: not used
    hardware_compatibility_level: str | None  # TensorRT enum member name; None: TensorRT's default
    version_compatible: bool
    exclude_lean_runtime: bool
    compute_capabilities: tuple[tuple[int, int], ...] = ()  # TensorRT-RTX ahead-of-time targets

    def network_args(self) -> dict[str, Any]:
        """Keyword arguments of ``NetworkFromOnnxPath``."""
        return {"path": str(self.onnx), "strongly_typed": self.strongly_typed}

    def config_args(self) -> dict[str, Any]:
        """Keyword arguments of ``CreateConfig`` (``CreateConfigRTX`` for TensorRT-RTX), with
        TensorRT enums given by member name and profiles as ``{input: (min, opt, max)}``."""
        args: dict[str, Any] = {
            "profiles": [s.inputs() for s in self.shapes],
            "builder_optimization_level": self.builder_optimization_level,
            "memory_pool_limits": {"WORKSPACE": self.workspace_bytes},
            "load_timing_cache": str(self.timing_cache) if self.timing_cache else None,
            "hardware_compatibility_level": self.hardware_compatibility_level,
            "version_compatible": self.version_compatible,
            "exclude_lean_runtime": self.exclude_lean_runtime,
        }
        if self.backend == "tensorrt-rtx":
            args["compute_capabilities"] = [list(c) for c in self.compute_capabilities]
        return args

    def engine_args(self) -> dict[str, Any]:
        """Keyword arguments of ``EngineFromNetwork`` besides the network and config."""
        return {"save_timing_cache": str(self.timing_cache) if self.timing_cache else None}

    def profile_entries(self) -> tuple[ProfileEntry, ...]:
        """Which optimisation profile serves which grid and batch range (the sidecar's ``profile_index``)."""
        return tuple(ProfileEntry(i, s.grid, s.min[0], s.opt[0], s.max[0]) for i, s in enumerate(self.shapes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network_args(),
            "config": {
                **self.config_args(),
                "profiles": [
                    {name: {"min": list(lo), "opt": list(opt), "max": list(hi)} for name, (lo, opt, hi) in s.inputs().items()}
                    for s in self.shapes
                ],
                "workspace": format_size(self.workspace_bytes),
            },
            "engine": self.engine_args(),
            "backend": self.backend,
            "profile_index": [e.to_dict() for e in self.profile_entries()],
        }

    def profile_index(self, batch: int, grid: tuple[int, ...] | None = None) -> int:
        """The optimisation profile serving ``batch`` (at ``grid`` for a dynamic-grid model)."""
        return select_profile(self.profile_entries(), batch, grid, self.engine.name)

    def to_doc(self) -> dict[str, Any]:
        """Every field as JSON (paths as text): what a build in a child process is handed."""
        doc = {f: getattr(self, f) for f in self.__dataclass_fields__}
        for f in ("onnx", "engine", "sidecar", "timing_cache"):
            doc[f] = str(doc[f]) if doc[f] is not None else None
        doc["shapes"] = [{f: getattr(s, f) for f in s.__dataclass_fields__} for s in self.shapes]
        doc["compute_capabilities"] = [list(c) for c in self.compute_capabilities]
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> BuildPlan:
        """The plan :meth:`to_doc` wrote (a document this process's parent wrote, not a user's file)."""
        def tup(v: Any) -> tuple[int, ...] | None:
            return tuple(int(x) for x in v) if v is not None else None

        shapes = tuple(ShapeProfile(s["input"], tup(s["min"]) or (), tup(s["opt"]) or (), tup(s["max"]) or (),
                                    s.get("grid_input"), tup(s.get("grid"))) for s in doc["shapes"])
        paths = {f: Path(doc[f]) if doc[f] is not None else None for f in ("onnx", "engine", "sidecar", "timing_cache")}
        caps = tuple((int(a), int(b)) for a, b in doc["compute_capabilities"])
        rest = {f: doc[f] for f in cls.__dataclass_fields__ if f not in {*paths, "shapes", "compute_capabilities"}}
        return cls(**paths, **rest, shapes=shapes, compute_capabilities=caps)  # type: ignore[arg-type]


def engine_paths(out_dir: str | Path, profile: str, onnx_path: str | Path, precision: str) -> tuple[Path, Path]:
    """``DIR/engines/<profile>/<model-stem>.<precision>.plan`` and its ``.plan.json`` sidecar. A
    trailing ``.<precision>`` in the ONNX name is not repeated (``m.fp16.onnx`` -> ``m.fp16.plan``)."""
    stem = Path(onnx_path).name
    stem = stem.removesuffix(".onnx")
    if stem.endswith(f".{precision}"):
        stem = stem[: -len(precision) - 1]
    folder = Path(out_dir) / "engines" / profile
    name = f"{stem}.{precision}"
    return folder / f"{name}{ENGINE_SUFFIX}", folder / f"{name}{SIDECAR_SUFFIX}"


def _batch_shapes(info: OnnxInput, profile: Profile) -> tuple[ShapeProfile, ...]:
    shape = info.input_shape
    if not shape:
        raise UserError(
            f"Input '{info.input_name}' of {info.path.name} has no declared shape.",
            "Export with a static image shape and a dynamic batch axis.",
        )
    fixed_other = [i for i in info.dynamic_axes if i != 0]
    if fixed_other:
        names = ", ".join(f"axis {i} ({shape[i] or '?'})" for i in fixed_other)
        raise UserError(
            f"Input '{info.input_name}' of {info.path.name} has dynamic {names}; a profile fixes only the batch (axis 0).",
            "Export with a fixed image size (lookupvit export does), leaving only the batch dynamic.",
        )
    rest = tuple(d for d in shape[1:] if isinstance(d, int))  # all static: checked above
    b = profile.batch
    if isinstance(shape[0], int):
        if b.min == b.max == shape[0]:
            return (ShapeProfile(info.input_name, (shape[0], *rest), (shape[0], *rest), (shape[0], *rest)),)
        raise UserError(
            f"Input '{info.input_name}' of {info.path.name} has a fixed batch of {shape[0]}, but profile "
            f"{profile.name} asks for batches {b.min}..{b.max}.",
            "Export the model with a dynamic batch axis (lookupvit export does), or use a profile whose "
            f"batch min = max = {shape[0]}.",
        )
    return tuple(
        ShapeProfile(info.input_name, (lo, *rest), (opt, *rest), (hi, *rest)) for lo, opt, hi in b.optimization_profiles()
    )


def check_tensorrt_profile(profile: Profile) -> None:
    """Engines exist only for TensorRT profiles."""
    if not profile.is_tensorrt:
        raise UserError(
            f"Profile {profile.name} uses backend \"{profile.backend}\": there is no engine to build for it "
            "(ONNX Runtime runs the .onnx file directly).",
            "Choose a TensorRT profile, e.g. --profile h100 (`lookupvit profiles` lists them).",
        )


def make_build_plan(
    profile: Profile,
    info: OnnxInput,
    precision: str,
    out_dir: str | Path,
    backend: str = "tensorrt",
) -> BuildPlan:
    """The strongly typed build of ``info`` for ``profile``: a pure function of its arguments."""
    check_tensorrt_profile(profile)
    if backend not in TENSORRT_MODULES:  # the flavour: full TensorRT or TensorRT-RTX
        raise ValueError(f"unknown TensorRT flavour {backend!r}")
    engine, sidecar = engine_paths(out_dir, profile.name, info.path, precision)
    shapes = _batch_shapes(info, profile)
    if info.grid_input is not None:  # one profile per (grid, latency-critical batch), grid-major
        shapes = tuple(
            ShapeProfile(s.input, s.min, s.opt, s.max, info.grid_input, g) for g in info.grids for s in shapes
        )
    rtx = backend == "tensorrt-rtx"
    hw = profile.compatibility.hardware
    cc = profile.compute_capability
    return BuildPlan(
        onnx=info.path,
        engine=engine,
        sidecar=sidecar,
        profile=profile.name,
        precision=precision,
        backend=backend,
        strongly_typed=True,
        shapes=shapes,
        builder_optimization_level=profile.builder.optimization_level,
        workspace_bytes=profile.builder.workspace_bytes,
        # TensorRT-RTX picks kernels when the engine first runs, so it has no build-time timing cache.
        timing_cache=None if rtx else profile.timing_cache_path(out_dir),
        hardware_compatibility_level=None if hw == "none" else hw.upper(),
        version_compatible=profile.compatibility.version_compatible,
        exclude_lean_runtime=profile.compatibility.exclude_lean_runtime,
        compute_capabilities=(cc,) if rtx and cc else (),
    )


def cache_key(onnx_sha256: str, profile_hash: str, tensorrt_version: str, target: str) -> str:
    """sha256 of the four things an engine depends on: the graph, the profile's build settings, the
    TensorRT flavour and version, and what the engine is for (the compute capability TensorRT-RTX
    compiled it for, or the GPU full TensorRT tuned it on: :attr:`exporter.backends.tensorrt.env.BuildTarget.label`)."""
    parts = {"onnx_sha256": onnx_sha256, "profile_hash": profile_hash, "tensorrt": tensorrt_version, "target": target}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class BuildProgress(Protocol):
    """Receives TensorRT's build phases (``trt.IProgressMonitor``), e.g. to draw a progress display.
    Called from TensorRT's threads; implementations must not raise."""

    def phase_start(self, name: str, parent: str | None, steps: int) -> None: ...

    def step(self, name: str, step: int) -> None: ...

    def phase_finish(self, name: str) -> None: ...
