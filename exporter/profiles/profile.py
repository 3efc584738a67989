"""Deployment profiles: one TOML file per target GPU (or the CPU), validated into dataclasses.

docs/architecture.md, The backend axis. A profile says what to build and measure on one kind of machine: the backend,
the GPU's compute capability, the precisions worth building there, the batch range with one
TensorRT optimisation profile per latency-critical batch, the compressed grids, the builder
settings, hardware/version compatibility, the benchmark settings, and the models a full run
exports (`[models]`). Every key is checked, and an error names the key, the expected form and the
closest valid key.

CPU backends: ``onnxruntime`` (the embedded default) and ``openvino`` (the ``openvino`` extra), which
reads the same ONNX graphs; ``[benchmark] hint`` is OpenVINO's ``PERFORMANCE_HINT`` (``LATENCY``: one
inference stream; ``THROUGHPUT``: several; OpenVINO documentation, "High-level Performance Hints")
and is refused on other backends, as ``[builder]``, ``[compatibility]`` and CUDA graphs are on the CPU.

Hardware rules relied upon (NVIDIA's CUDA compute-capability tables and TensorRT support matrix):
bf16 tensor cores from sm_80 (Ampere); fp8 (E4M3) on sm_89 (Ada) and sm_90 onwards (Hopper,
Blackwell), not on the Ampere parts (sm_80, sm_86, sm_87 Orin); TensorRT 10 needs sm_75 or newer.
TensorRT 11 is strongly typed, so a profile lists precisions to *build* (graphs converted by the
precision stage), never builder precision flags (docs/architecture.md, Precisions).

Profiles are found by name in, in order: the folders of ``$LOOKUPVIT_PROFILES`` (``os.pathsep``
separated), ``./profiles`` in the working directory, the ``profiles/`` folder next to the
``exporter`` package (a source checkout or editable install), and
``<sys.prefix>/share/lookupvit-deploy/profiles`` (where a wheel install puts the shipped ones; the
user base's ``share/`` for ``pip install --user``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import site
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from ..errors import UserError, closest
from ..precisions import ONNXRUNTIME_CPU_PRECISIONS, PRECISIONS, get_precision

Backend = Literal["onnxruntime", "openvino", "tensorrt", "tensorrt-rtx"]
HardwareCompatibility = Literal["none", "ampere_plus", "same_compute_capability"]
PerformanceHint = Literal["latency", "throughput"]

BACKENDS: tuple[str, ...] = ("onnxruntime", "openvino", "tensorrt", "tensorrt-rtx")
TENSORRT_BACKENDS: tuple[str, ...] = ("tensorrt", "tensorrt-rtx")
CPU_BACKENDS: tuple[str, ...] = ("onnxruntime", "openvino")
# OpenVINO reads the graphs the precision stage writes for ONNX Runtime: fp32, and int8 as ONNX
# QuantizeLinear/DequantizeLinear pairs, which the CPU plugin's low-precision transformations run as
# int8 kernels (OpenVINO documentation, "Low Precision Transformations"). Its fp16/bf16 are inference
# precision hints over an fp32 graph, not the cast graphs the pipeline writes, so a profile lists neither.
OPENVINO_PRECISIONS: tuple[str, ...] = ("fp32", "int8")
CPU_PRECISIONS: dict[str, tuple[str, ...]] = {"onnxruntime": ONNXRUNTIME_CPU_PRECISIONS, "openvino": OPENVINO_PRECISIONS}
CPU_RUNTIME_NAMES = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}
# [benchmark] keys that only some backends read (the registered backend's timing_options come from here)
BACKEND_BENCHMARK_KEYS: dict[str, tuple[str, ...]] = {"hint": ("openvino",)}
PERFORMANCE_HINTS: tuple[str, ...] = ("latency", "throughput")
HARDWARE_LEVELS: tuple[str, ...] = ("none", "ampere_plus", "same_compute_capability")
MIN_TENSORRT_CC = (7, 5)
TIMING_CACHE = "timing-cache/{profile}.cache"  # builder.timing_cache when the profile leaves it out

ENV_VAR = "LOOKUPVIT_PROFILES"
PACKAGE_PROFILES = Path(__file__).resolve().parent.parent.parent / "profiles"
INSTALLED_PROFILES = Path(sys.prefix) / "share" / "lookupvit-deploy" / "profiles"
USER_INSTALLED_PROFILES = Path(site.getuserbase()) / "share" / "lookupvit-deploy" / "profiles"  # pip --user

# --- the parsed profile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRun:
    """One model a run exports, with the compressed grids to use (empty for a ViT baseline)."""

    variant: str
    grids: tuple[tuple[int, ...], ...] = ()

    @property
    def grid_labels(self) -> list[str]:
        from ..models import grid_label

        return [grid_label(g) for g in self.grids]


@dataclass(frozen=True)
class Models:
    """``[models]``: what `lookupvit run --profile` exports and measures."""

    accuracy: tuple[ModelRun, ...] = ()  # task accuracy per precision and grid
    latency: tuple[ModelRun, ...] = ()  # timed per grid x precision x batch
    baseline: ModelRun | None = None  # a plain ViT of the same width, timed next to them
    latency_precisions: tuple[str, ...] = ()  # the latency models' precisions (empty: the profile's)
    latency_batches: tuple[int, ...] = ()  # the latency models' batches (empty: batch.opt)
    dynamic_grid: bool = False  # one dynamic-grid graph per LookupViT serves all its grids (docs/dynamic-grid.md)

    @property
    def all(self) -> list[ModelRun]:
        runs = [*self.accuracy, *self.latency]
        return runs + ([self.baseline] if self.baseline else [])


@dataclass(frozen=True)
class BatchSettings:
    """``[batch]``: the engine's batch range and the latency-critical batches inside it.

    Each latency-critical batch ``opt`` gets its own TensorRT optimisation profile
    ``(min, opt, max)``, so the kernels are tuned at that batch while any batch in ``min..max``
    still runs. The benchmark measures exactly these batches.
    """

    min: int = 1
    opt: tuple[int, ...] = (1,)
    max: int = 1

    def optimization_profiles(self) -> list[tuple[int, int, int]]:
        return [(self.min, o, self.max) for o in self.opt]


@dataclass(frozen=True)
class BuilderSettings:
    """``[builder]``: TensorRT builder settings (no precision flags: the graph carries precision)."""

    optimization_level: int = 3  # 0..5, TensorRT's default is 3
    workspace_bytes: int = 4 << 30  # MemoryPoolType.WORKSPACE limit
    timing_cache: str | None = None  # relative paths resolve against the build output folder
    timeout_s: float = 1800.0  # one build's time bound (the builder runs in a child process)
    host_memory_bytes: int | None = None  # one build's memory bound on this machine; None: 3/4 of its memory


@dataclass(frozen=True)
class PickSettings:
    """``[pick]``: the latency budget the run's report recommends a setting for (what
    ``lookupvit pick RUN --latency-ms L [--min-top1 T] [--percentile P]`` chooses)."""

    latency_ms: float | None = None  # None: the report shows the Pareto front, no single choice
    min_top1: float | None = None
    percentile: str = "p50"


@dataclass(frozen=True)
class Compatibility:
    """``[compatibility]``: whether the engine must run on other GPUs or TensorRT versions."""

    hardware: HardwareCompatibility = "none"
    version_compatible: bool = False
    exclude_lean_runtime: bool = False


@dataclass(frozen=True)
class BenchmarkSettings:
    """``[benchmark]``: a measurement warms up for at least ``warmup`` calls and ``warmup_seconds``,
    then runs at least ``iterations`` calls and at least ``seconds`` in ``repeats`` interleaved
    rounds; a cell whose round medians vary by more than ``noise_threshold`` (coefficient of
    variation, a fraction) is flagged noisy, and its group timed again up to ``retries`` times; up to
    ``pace_wait`` seconds per sweep go to waiting out the machine's slow phases (exporter.latency.pace)."""

    # The one statement of every measurement default: a profile's omitted [benchmark] keys, `lookupvit
    # latency`'s options and exporter.latency's SweepSettings all take these.
    warmup: int = 5  # untimed iterations first
    iterations: int = 20  # timed calls per cell, at least
    seconds: float = 1.0  # and at least this long
    # ONNX Runtime intra-op / OpenVINO inference threads (0: every core; "auto": tried per cell, the fewest within 5% of
    # the fastest, exporter.latency.sweep) / host threads feeding a GPU
    threads: int | Literal["auto"] = "auto"
    cuda_graphs: bool = False  # capture the enqueue in a CUDA graph and replay it
    warmup_seconds: float = 0.2
    repeats: int = 5
    noise_threshold: float = 0.05
    retries: int = 1  # times a group with a noisy cell is timed again (the quietest attempt stands)
    pace_wait: float = 60.0  # seconds a sweep may wait out the machine's slow phases (0: only flag them)
    hint: PerformanceHint = "latency"  # OpenVINO's PERFORMANCE_HINT: one stream (latency) or several (throughput)


@dataclass(frozen=True)
class ClusterSettings:
    """``[cluster]``: what a node must offer to run this profile's device work in a Ray cluster
    (``lookupvit run --cluster``): the build, validation, comparison and latency stages.

    ``accelerator`` is one of Ray's accelerator types (``H100``, ``L4``, ...; a node with such a GPU
    advertises the resource ``accelerator_type:<type>``), ``gpus`` the GPUs a task holds, ``cpus``
    the CPUs it holds, and ``resources`` custom resources a node was started with
    (``ray start --resources '{"jetson-orin": 1}'``) for hardware Ray does not name.
    """

    accelerator: str | None = None
    gpus: float = 0.0
    cpus: float = 1.0
    resources: tuple[tuple[str, float], ...] = ()

    def ray_resources(self) -> dict[str, float]:
        """The custom resources a device task asks Ray for (the accelerator as Ray spells it)."""
        out = dict(self.resources)
        if self.accelerator:
            out[f"accelerator_type:{self.accelerator}"] = 0.001  # a fraction: any number of tasks per node
        return out

    def describe(self) -> str:
        parts = [f"{self.cpus:g} CPU"] + ([f"{self.gpus:g} GPU"] if self.gpus else [])
        parts += [f"{k}: {v:g}" for k, v in self.ray_resources().items()]
        return ", ".join(parts)


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    backend: Backend
    description: str = ""
    gpu: str = ""  # the GPU it is written for, in words
    gpu_memory: int | None = None  # bytes; bounds builder.workspace
    compute_capability: tuple[int, int] | None = None
    precisions: tuple[str, ...] = ("fp32",)
    models: Models = field(default_factory=Models)
    batch: BatchSettings = field(default_factory=BatchSettings)
    builder: BuilderSettings = field(default_factory=BuilderSettings)
    compatibility: Compatibility = field(default_factory=Compatibility)
    benchmark: BenchmarkSettings = field(default_factory=BenchmarkSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    pick: PickSettings = field(default_factory=PickSettings)

    @property
    def is_tensorrt(self) -> bool:
        return self.backend in TENSORRT_BACKENDS

    @property
    def sm(self) -> str:
        """``"sm_90"`` for compute capability 9.0; ``""`` without one."""
        cc = self.compute_capability
        return f"sm_{cc[0]}{cc[1]}" if cc else ""

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The latency-critical batches: the ones benchmarked and tuned for."""
        return self.batch.opt

    def timing_cache_path(self, out_dir: str | Path) -> Path | None:
        """The timing cache file for a build writing into ``out_dir``."""
        tc = self.builder.timing_cache
        if not tc:
            return None
        p = Path(tc).expanduser()
        return p if p.is_absolute() else Path(out_dir) / p

    def build_settings(self) -> dict[str, Any]:
        """The settings that shape an engine. Models, grids and benchmark settings are left out:
        changing them must not invalidate built engines; neither does the timing cache location."""
        return {
            "backend": self.backend,
            "compute_capability": list(self.compute_capability) if self.compute_capability else None,
            "batch": {"min": self.batch.min, "opt": list(self.batch.opt), "max": self.batch.max},
            "builder": {
                "optimization_level": self.builder.optimization_level,
                "workspace_bytes": self.builder.workspace_bytes,
            },
            "compatibility": asdict(self.compatibility),
        }

    @property
    def build_hash(self) -> str:
        """sha256 over :meth:`build_settings`: the profile's part of an engine's cache key."""
        text = json.dumps(self.build_settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        m = self.models

        def run(r: ModelRun) -> dict[str, Any]:
            return {"variant": r.variant, "grids": r.grid_labels}

        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "gpu": self.gpu,
            "backend": self.backend,
            "compute_capability": ".".join(map(str, self.compute_capability)) if self.compute_capability else None,
            "precisions": list(self.precisions),
            "models": {
                "accuracy": [run(r) for r in m.accuracy],
                "latency": [run(r) for r in m.latency],
                "baseline": m.baseline.variant if m.baseline else None,
                "dynamic_grid": m.dynamic_grid,
            },
            "batch": {"min": self.batch.min, "opt": list(self.batch.opt), "max": self.batch.max},
            "builder": asdict(self.builder),
            "compatibility": asdict(self.compatibility),
            "benchmark": {k: v for k, v in asdict(self.benchmark).items()
                          if self.backend in BACKEND_BENCHMARK_KEYS.get(k, (self.backend,))},
            "cluster": {**asdict(self.cluster), "resources": dict(self.cluster.resources)},
            "pick": asdict(self.pick),
            "build_hash": self.build_hash,
        }


# --- hardware rules -------------------------------------------------------------------------------



def gpu_has_precision(cc: tuple[int, int], precision: str) -> bool:
    """Whether a GPU of compute capability ``cc`` runs ``precision`` natively in TensorRT.

    fp32/fp16/int8 on every GPU TensorRT 10 supports; bf16 from sm_80; fp8 on sm_89 and from
    sm_90 (the Ampere parts sm_86/sm_87 have bf16 but no fp8).
    """
    return get_precision(precision).runs_on(cc)


def parse_compute_capability(value: object, where: str = "compute_capability") -> tuple[int, int]:
    """``"9.0"``, ``9.0``, ``"sm_90"`` or ``"8.9"`` -> ``(major, minor)``."""
    text = str(value).strip().lower()
    m = re.fullmatch(r"(\d+)\.(\d)", text) or re.fullmatch(r"sm_?(\d+)(\d)", text)
    if isinstance(value, bool) or not isinstance(value, str | float | int) or not m:
        raise UserError(
            f"{where}: expected a compute capability like \"9.0\" or \"sm_89\", got {value!r}.",
            "Write the GPU's compute capability as major.minor in quotes, e.g. compute_capability = \"8.9\".",
        )
    return int(m.group(1)), int(m.group(2))


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
               "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}


def parse_size(value: object, where: str) -> int:
    """A byte count: an integer, or a string with a binary unit (``"512MiB"``, ``"8GiB"``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            n = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
            if n > 0:
                return n
    raise UserError(
        f"{where}: expected a positive size such as \"8GiB\", \"512MiB\" or a byte count, got {value!r}.",
        "Use the binary units KiB, MiB, GiB or TiB (\"GB\" is ambiguous and not accepted).",
    )


def format_size(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


# --- parsing --------------------------------------------------------------------------------------

T = TypeVar("T")


class _Table:
    """A TOML table being read: checks key names and value types, naming ``table.key`` in errors."""

    def __init__(self, data: Mapping[str, Any], where: str, source: str, allowed: Iterable[str]) -> None:
        self.data, self.where, self.source = data, where, source
        self.allowed = tuple(allowed)
        for key in data:
            if key not in self.allowed:
                near = closest(key, self.allowed, n=1)
                did = f"Did you mean '{self._key(near[0])}'? " if near else ""
                raise UserError(
                    f"{source}: unknown key '{self._key(key)}'.",
                    f"{did}Valid keys {self._in()}: {', '.join(self.allowed)}.",
                )

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _in(self) -> str:
        return f"in [{self.where}]" if self.where else "at the top level"

    def error(self, key: str, expected: str, value: object, hint: str | None = None) -> UserError:
        return UserError(
            f"{self.source}: {self._key(key)}: expected {expected}, got {value!r}.",
            hint or f"Fix '{self._key(key)}' in {self.source}.",
        )

    def get(self, key: str, default: T, check: Callable[[object], bool], expected: str) -> T:
        if key not in self.data:
            return default
        value = self.data[key]
        if not check(value):
            raise self.error(key, expected, value)
        return cast(T, value)

    def require(self, key: str, check: Callable[[object], bool], expected: str) -> Any:
        if key not in self.data:
            raise UserError(
                f"{self.source}: missing key '{self._key(key)}' ({expected}).",
                f"Add {self._key(key)} = ... to {self.source}.",
            )
        value = self.data[key]
        if not check(value):
            raise self.error(key, expected, value)
        return value

    def table(self, key: str, allowed: Iterable[str]) -> _Table:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(key, f"a table [{self._key(key)}]", value)
        return _Table(value, self._key(key), self.source, allowed)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_pos_int(v: object) -> bool:
    return _is_int(v) and cast(int, v) >= 1


def _is_nonneg_int(v: object) -> bool:
    return _is_int(v) and cast(int, v) >= 0


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_str(v: object) -> bool:
    return isinstance(v, str)


def _is_bool(v: object) -> bool:
    return isinstance(v, bool)


def _is_str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _is_grid_list(v: object) -> bool:
    return isinstance(v, list) and all((_is_pos_int(x) or isinstance(x, str)) for x in v)


def _is_batch_list(v: object) -> bool:
    return _is_pos_int(v) or (isinstance(v, list) and len(v) > 0 and all(_is_pos_int(x) for x in v))


def _is_nonneg_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 0


TOP_KEYS = ("description", "gpu", "gpu_memory", "backend", "compute_capability", "precisions",
            "models", "grids", "batch", "builder", "compatibility", "benchmark", "cluster", "pick")
PICK_KEYS = ("latency_ms", "min_top1", "percentile")
MODELS_KEYS = ("accuracy", "latency", "baseline", "latency_precisions", "latency_batches", "dynamic_grid")
CLUSTER_KEYS = ("accelerator", "gpus", "cpus", "resources")
# Ray's accelerator types for NVIDIA GPUs (ray.util.accelerators); other hardware uses custom resources
RAY_NVIDIA_ACCELERATORS = ("V100", "P100", "T4", "P4", "K80", "A10G", "L4", "L40S", "A100", "H100", "H200", "H20",
                           "B200")
MAX_CLUSTER_UNITS = 1_024

# Sane limits: a value past these is a typo or a unit mistake, refused with the limit named.
MAX_GPU_MEMORY = 512 << 30  # no GPU has more (B300: 288 GB)
MAX_BATCH = 65_536
MAX_OPT_PROFILES = 16
LIMITS = {  # [benchmark] key -> (largest value, what it counts)
    "warmup": (100_000, "calls"), "iterations": (1_000_000, "calls"), "seconds": (3_600, "seconds"),
    "warmup_seconds": (600, "seconds"), "repeats": (1_000, "rounds"), "threads": (1_024, "threads"),
    "retries": (10, "attempts"), "pace_wait": (3_600, "seconds"),
}
GRIDS_KEYS = ("accuracy", "latency")
BATCH_KEYS = ("min", "opt", "max")
BUILDER_KEYS = ("optimization_level", "workspace", "timing_cache", "timeout_s", "host_memory")
COMPAT_KEYS = ("hardware", "version_compatible", "exclude_lean_runtime")
BENCH_KEYS = ("warmup", "warmup_seconds", "iterations", "seconds", "repeats", "noise_threshold", "threads", "cuda_graphs",
              "hint", "retries", "pace_wait")


def parse_profile(data: Mapping[str, Any], name: str, path: Path) -> Profile:
    """Validate a decoded TOML document into a :class:`Profile`; raise :class:`UserError` on the
    first problem, naming the key, the expected form and the fix."""
    src = str(path)
    top = _Table(data, "", src, TOP_KEYS)

    backend = top.require("backend", lambda v: v in BACKENDS, f"one of {', '.join(BACKENDS)}")
    is_trt = backend in TENSORRT_BACKENDS

    cc: tuple[int, int] | None = None
    if "compute_capability" in data:
        if not is_trt:
            raise UserError(
                f"{src}: compute_capability is set but backend = \"{backend}\" runs on the CPU.",
                "Remove compute_capability, or set backend = \"tensorrt\" for a GPU profile.",
            )
        cc = parse_compute_capability(data["compute_capability"], f"{src}: compute_capability")
        if cc < MIN_TENSORRT_CC:
            raise UserError(
                f"{src}: compute_capability {cc[0]}.{cc[1]} is older than TensorRT 10 supports "
                f"(sm_{MIN_TENSORRT_CC[0]}{MIN_TENSORRT_CC[1]} and newer).",
                "Use a Turing (7.5) or newer GPU for TensorRT, or the cpu profile with ONNX Runtime.",
            )
    elif is_trt:
        raise UserError(
            f"{src}: missing key 'compute_capability' (required for backend \"{backend}\").",
            "Add the target GPU's compute capability, e.g. compute_capability = \"9.0\" for H100.",
        )

    precisions = tuple(top.require("precisions", _is_str_list, f"a list of precisions from {', '.join(PRECISIONS)}"))
    if not precisions:
        raise top.error("precisions", "at least one precision", [])
    for p in precisions:
        if p not in PRECISIONS:
            near = closest(p, PRECISIONS, n=1)
            raise UserError(
                f"{src}: precisions: unknown precision {p!r}; expected one of {', '.join(PRECISIONS)}.",
                f"Did you mean '{near[0]}'?" if near else None,
            )
        if cc is not None and not gpu_has_precision(cc, p):
            need = get_precision(p).min_compute_capability or (0, 0)
            what = "sm_89 (Ada) or sm_90 and newer (Hopper, Blackwell)" if p == "fp8" else f"sm_{need[0]}{need[1]} or newer"
            raise UserError(
                f"{src}: precisions: {p} is not available on compute capability {cc[0]}.{cc[1]}: "
                f"{p} needs {what}.",
                f"Remove \"{p}\" from precisions for this GPU.",
            )
        if not is_trt and p not in CPU_PRECISIONS[backend]:
            runtime = CPU_RUNTIME_NAMES[backend]
            raise UserError(
                f"{src}: precisions: {p} has no {runtime} CPU kernels worth measuring; "
                f"expected some of {', '.join(CPU_PRECISIONS[backend])} for backend = \"{backend}\".",
                f"Remove \"{p}\" from precisions of this {runtime} profile.",
            )
    if len(set(precisions)) != len(precisions):
        raise top.error("precisions", "each precision once", list(precisions))

    models = _parse_models(top, src)
    gpu_memory = parse_size(top.data["gpu_memory"], f"{src}: gpu_memory") if "gpu_memory" in top.data else None
    if gpu_memory is not None and not 0 < gpu_memory <= MAX_GPU_MEMORY:
        raise UserError(f"{src}: gpu_memory = {top.data['gpu_memory']!r} is outside 1 B .. 512 GiB.",
                        "Give the GPU's memory, e.g. gpu_memory = \"80GiB\" for an H100.")
    if gpu_memory is not None and not is_trt:
        raise UserError(f"{src}: gpu_memory is set but backend = \"{backend}\" runs on the CPU.",
                        "Remove gpu_memory from a CPU profile.")

    bt = top.table("batch", BATCH_KEYS)
    bmin = bt.get("min", BatchSettings().min, _is_pos_int, "a positive integer")
    opt_raw = bt.get("opt", [bmin], _is_batch_list, "a positive integer or a non-empty list of them (the latency-critical batches)")
    opt = tuple(opt_raw) if isinstance(opt_raw, list) else (cast(int, opt_raw),)
    bmax = bt.get("max", max(opt), _is_pos_int, "a positive integer")
    for o in opt:
        if bmin > o:
            raise UserError(
                f"{src}: batch: min = {bmin} is larger than opt = {o}; expected min <= opt <= max.",
                "Lower batch.min or raise the opt batch so that min <= every opt <= max.",
            )
        if o > bmax:
            raise UserError(
                f"{src}: batch: opt = {o} is larger than max = {bmax}; expected min <= opt <= max.",
                "Raise batch.max or lower the opt batch so that min <= every opt <= max.",
            )
    if len(set(opt)) != len(opt):
        raise bt.error("opt", "distinct batches (one optimisation profile each)", list(opt))
    if bmax > MAX_BATCH:
        raise UserError(f"{src}: batch: max = {bmax} is beyond {MAX_BATCH}; no engine is tuned for such batches.",
                        "Use the batch sizes the deployment serves, e.g. max = 128.")
    if len(opt) > MAX_OPT_PROFILES:
        raise UserError(f"{src}: batch: {len(opt)} opt batches; each is an optimisation profile, at most "
                        f"{MAX_OPT_PROFILES}.", "Keep the latency-critical batches only, e.g. opt = [1, 8, 64].")
    for key, allowed, listed in (("latency_precisions", precisions, models.latency_precisions),
                                 ("latency_batches", opt, models.latency_batches)):
        extra = [v for v in listed if v not in allowed]
        if extra:
            raise UserError(f"{src}: models.{key} lists {extra}, which the profile does not measure ({list(allowed)}).",
                            f"models.{key} is a subset of the profile's {'precisions' if 'prec' in key else 'batch.opt'}.")

    bu = top.table("builder", BUILDER_KEYS)
    ct = top.table("compatibility", COMPAT_KEYS)
    if not is_trt:
        for key, t in (("builder", bu), ("compatibility", ct)):
            if t.data:
                raise UserError(
                    f"{src}: [{key}] applies to TensorRT builds, but backend = \"{backend}\".",
                    f"Remove the [{key}] table, or set backend = \"tensorrt\" with a compute_capability.",
                )
    db = BuilderSettings()  # the defaults, stated once
    level = bu.get("optimization_level", db.optimization_level, lambda v: _is_int(v) and 0 <= cast(int, v) <= 5, "an integer 0..5")
    workspace = parse_size(bu.data["workspace"], f"{src}: builder.workspace") if "workspace" in bu.data else db.workspace_bytes
    tc_raw = bu.get("timing_cache", TIMING_CACHE.format(profile=name), lambda v: isinstance(v, str) or v is False,
                    "a path (relative paths resolve against the build's -o folder) or false to disable")
    if gpu_memory is not None and workspace > gpu_memory:
        raise UserError(
            f"{src}: builder.workspace = {bu.data['workspace']!r} is larger than the GPU's memory "
            f"(gpu_memory = {top.data['gpu_memory']!r}).",
            "Give the builder at most the GPU's memory, e.g. workspace = \"16GiB\".",
        )
    if workspace > MAX_GPU_MEMORY:
        raise UserError(f"{src}: builder.workspace = {bu.data['workspace']!r} is larger than any GPU's memory.",
                        "Use e.g. workspace = \"16GiB\".")
    timeout_s = bu.get("timeout_s", db.timeout_s, lambda v: _is_number(v) and 0 < float(cast(float, v)) <= 7 * 86400,
                       "seconds, more than 0 and at most a week")
    host_memory = (parse_size(bu.data["host_memory"], f"{src}: builder.host_memory") if "host_memory" in bu.data
                   else db.host_memory_bytes)
    if host_memory is not None and host_memory < 256 << 20:
        raise UserError(f"{src}: builder.host_memory = {bu.data['host_memory']!r} is too small for a TensorRT build.",
                        "Give the builder at least \"1GiB\" (the default is three quarters of this machine's memory).")
    builder = BuilderSettings(level, workspace, tc_raw or None, float(timeout_s), host_memory)

    dc = Compatibility()
    hardware = ct.get("hardware", dc.hardware, lambda v: v in HARDWARE_LEVELS, f"one of {', '.join(HARDWARE_LEVELS)}")
    if hardware == "ampere_plus" and cc is not None and cc < (8, 0):
        raise UserError(
            f"{src}: compatibility.hardware = \"ampere_plus\" needs an Ampere or newer GPU, "
            f"but compute_capability is {cc[0]}.{cc[1]}.",
            "Use hardware = \"none\" for this GPU.",
        )
    version_compatible = ct.get("version_compatible", dc.version_compatible, _is_bool, "true or false")
    exclude_lean = ct.get("exclude_lean_runtime", dc.exclude_lean_runtime, _is_bool, "true or false")
    if exclude_lean and not version_compatible:
        raise UserError(
            f"{src}: compatibility.exclude_lean_runtime = true needs version_compatible = true.",
            "Set compatibility.version_compatible = true, or drop exclude_lean_runtime.",
        )
    compat = Compatibility(cast(HardwareCompatibility, hardware), version_compatible, exclude_lean)

    be = top.table("benchmark", BENCH_KEYS)
    d = BenchmarkSettings()  # the defaults, stated once
    bench = BenchmarkSettings(
        warmup=be.get("warmup", d.warmup, _is_nonneg_int, "a non-negative integer (untimed iterations)"),
        iterations=be.get("iterations", d.iterations, _is_pos_int, "a positive integer"),
        seconds=float(be.get("seconds", d.seconds, _is_nonneg_number, "a non-negative number of seconds")),
        threads=be.get("threads", d.threads, lambda v: _is_nonneg_int(v) or v == "auto",
                       "a non-negative integer (0: every core) or \"auto\" (tried per cell)"),
        cuda_graphs=be.get("cuda_graphs", d.cuda_graphs, _is_bool, "true or false"),
        warmup_seconds=float(be.get("warmup_seconds", d.warmup_seconds, _is_nonneg_number,
                                    "a non-negative number of seconds")),
        repeats=be.get("repeats", d.repeats, _is_pos_int, "a positive integer (interleaved rounds)"),
        noise_threshold=float(be.get("noise_threshold", d.noise_threshold,
                                     lambda v: _is_nonneg_number(v) and cast(float, v) < 1,
                                     "a fraction from 0 to below 1 (0.05: flag cells whose round medians vary by 5%)")),
        retries=be.get("retries", d.retries, _is_nonneg_int, "a non-negative integer (times a noisy group is timed again)"),
        pace_wait=float(be.get("pace_wait", d.pace_wait, _is_nonneg_number,
                               "a non-negative number of seconds (0: flag slow phases, never wait)")),
        hint=cast(PerformanceHint, be.get("hint", d.hint, lambda v: v in PERFORMANCE_HINTS,
                                          f"one of {', '.join(map(repr, PERFORMANCE_HINTS))} (OpenVINO's performance hint)")),
    )
    for key, (limit, unit) in LIMITS.items():
        value = getattr(bench, key)
        if isinstance(value, (int, float)) and value > limit:
            raise UserError(f"{src}: benchmark.{key} = {be.data[key]!r} is beyond {limit} {unit}.",
                            f"Use a value up to {limit}; the defaults are sound for most machines.")
    if "hint" in be.data and backend not in BACKEND_BENCHMARK_KEYS["hint"]:
        raise UserError(
            f"{src}: benchmark.hint = {be.data['hint']!r} is OpenVINO's performance hint, but backend = \"{backend}\".",
            "Remove benchmark.hint, or set backend = \"openvino\".",
        )
    if bench.cuda_graphs and not is_trt:
        raise UserError(
            f"{src}: benchmark.cuda_graphs = true, but backend = \"{backend}\" has no CUDA graphs.",
            "Set benchmark.cuda_graphs = false in a CPU profile.",
        )

    cluster = _parse_cluster(top, src, is_trt)
    pt = top.table("pick", PICK_KEYS)
    dp = PickSettings()
    pick = PickSettings(
        pt.get("latency_ms", dp.latency_ms, lambda v: _is_number(v) and 0 < float(cast(float, v)) <= 3_600_000,
               "a latency in milliseconds, more than 0"),
        pt.get("min_top1", dp.min_top1, lambda v: _is_number(v) and 0 <= float(cast(float, v)) <= 100, "a top-1 in percent, 0..100"),
        pt.get("percentile", dp.percentile, lambda v: v in ("p50", "p99"), "\"p50\" or \"p99\""),
    )

    return Profile(
        name=name,
        path=path,
        backend=cast(Backend, backend),
        description=top.get("description", "", _is_str, "a string"),
        gpu=top.get("gpu", "", _is_str, "a string (the GPU's name)"),
        gpu_memory=gpu_memory,
        compute_capability=cc,
        precisions=precisions,
        models=models,
        batch=BatchSettings(bmin, opt, bmax),
        builder=builder,
        compatibility=compat,
        benchmark=bench,
        cluster=cluster,
        pick=pick,
    )


def _parse_cluster(top: _Table, src: str, is_trt: bool) -> ClusterSettings:
    ct = top.table("cluster", CLUSTER_KEYS)

    def units(v: object) -> bool:
        return _is_nonneg_number(v) and cast(float, v) <= MAX_CLUSTER_UNITS

    dc = ClusterSettings()
    accelerator = ct.get("accelerator", dc.accelerator, _is_str, "one of Ray's accelerator types, e.g. \"H100\"")
    if accelerator is not None and accelerator not in RAY_NVIDIA_ACCELERATORS:
        near = closest(accelerator, RAY_NVIDIA_ACCELERATORS, n=1)
        raise UserError(
            f"{src}: cluster.accelerator = {accelerator!r} is not one of Ray's NVIDIA accelerator types "
            f"({', '.join(RAY_NVIDIA_ACCELERATORS)}).",
            (f"Did you mean '{near[0]}'? " if near else "")
            + "For hardware Ray does not name, start its nodes with a custom resource "
            "(ray start --resources '{\"my-gpu\": 1}') and set cluster.resources = { \"my-gpu\" = 1 }.",
        )
    gpus = float(ct.get("gpus", 1 if is_trt else 0, units, f"a number of GPUs from 0 to {MAX_CLUSTER_UNITS}"))
    cpus = float(ct.get("cpus", dc.cpus, units, f"a number of CPUs from 0 to {MAX_CLUSTER_UNITS}"))
    raw: dict[str, Any] = ct.get("resources", {}, lambda v: isinstance(v, dict) and all(units(x) for x in v.values()),
                 f"a table of custom resource amounts, e.g. {{ \"jetson-orin\" = 1 }} (each 0 to {MAX_CLUSTER_UNITS})")
    resources = tuple(sorted((str(k), float(v)) for k, v in raw.items()))
    for k, _ in resources:
        if k.startswith("accelerator_type:") or k in ("CPU", "GPU", "memory", "object_store_memory"):
            raise UserError(f"{src}: cluster.resources names {k!r}, which Ray sets itself.",
                            "Use cluster.accelerator for a GPU type and cluster.gpus/cpus for counts.")
    return ClusterSettings(accelerator, gpus, cpus, resources)


def _parse_models(top: _Table, src: str) -> Models:
    from ..models import get_variant, parse_grid

    mt = top.table("models", MODELS_KEYS)
    gt = top.table("grids", GRIDS_KEYS)
    accuracy: list[str] = mt.get("accuracy", [], _is_str_list, "a list of variant names")
    latency: list[str] = mt.get("latency", [], _is_str_list, "a list of variant names")
    baseline: str | None = mt.get("baseline", None, _is_str, "a variant name (a plain ViT)")

    def variant(name: str, key: str) -> Any:
        try:
            return get_variant(name)
        except UserError as e:
            raise UserError(f"{src}: models.{key}: {e.message}", e.hint) from None

    def runs(names: list[str], role: str) -> tuple[ModelRun, ...]:
        specs = gt.get(role, None, _is_grid_list, "a list of grids such as [3, 5, 7] or [\"4x7x7\"]")
        out = []
        for n in names:
            v = variant(n, role)
            cfg = v.config
            if not cfg.default_grids:
                raise UserError(
                    f"{src}: models.{role}: {n} is a plain ViT without a compressed grid.",
                    "List ViT baselines as models.baseline, and LookupViT variants under accuracy/latency.",
                )
            if specs is None:
                grids = tuple(cfg.default_grids)
            else:
                grids_list = []
                for s in specs:
                    try:
                        grids_list.append(parse_grid(s, cfg.lookup_grid))
                    except UserError as e:
                        raise UserError(f"{src}: grids.{role} ({n}): {e.message}", e.hint) from None
                grids = tuple(grids_list)
            out.append(ModelRun(n, grids))
        return tuple(out)

    base = None
    if baseline is not None:
        bv = variant(baseline, "baseline")
        if bv.config.default_grids:
            raise UserError(
                f"{src}: models.baseline: {baseline} is a LookupViT; the baseline is the plain ViT "
                "of the same width.",
                "Use e.g. baseline = \"vit_b16\" next to lookupvit_b16.",
            )
        base = ModelRun(baseline)
    for role in GRIDS_KEYS:
        if role in gt.data and not (accuracy if role == "accuracy" else latency):
            raise UserError(
                f"{src}: grids.{role} is set but models.{role} lists no model.",
                f"Add models.{role} = [\"...\"] or remove grids.{role}.",
            )
    lat_prec: tuple[str, ...] = tuple(mt.get("latency_precisions", [], _is_str_list, "a list of precisions (a subset of precisions)"))
    lat_batch: tuple[int, ...] = tuple(mt.get("latency_batches", [], lambda v: isinstance(v, list) and all(_is_pos_int(x) for x in v),
                             "a list of batch sizes (a subset of batch.opt)"))
    if (lat_prec or lat_batch) and not latency:
        raise UserError(f"{src}: models.latency_precisions/latency_batches are set but models.latency lists no model.",
                        "Add models.latency = [\"...\"] or remove them.")
    dynamic = mt.get("dynamic_grid", False, _is_bool, "true or false (one dynamic-grid graph per LookupViT)")
    return Models(runs(accuracy, "accuracy"), runs(latency, "latency"), base, lat_prec, lat_batch, dynamic)


def load_profile_file(path: str | Path, name: str | None = None) -> Profile:
    """Read and validate one profile file; the profile's name is the file's stem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Profile file {path} does not exist.", "Give a path to a .toml profile or a profile name.")
    from ..safe_paths import single_component
    from ..schema import check_toml

    name = single_component(name or path.stem, "The profile name (its file's stem)",
                            "Rename the profile file to a plain name, e.g. my-gpu.toml.")
    try:
        text = path.read_text()
        check_toml(text, path, "A profile is flat tables of values and lists (see profiles/cpu.toml): fix or "
                   "replace the file.")  # size and nesting bounded before tomllib recurses into it (exporter.schema)
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid TOML: {e}.", "Fix the syntax at the line named above.") from None
    except RecursionError:  # cannot happen after the bound; never a traceback
        raise UserError(f"{path}: nested too deeply.", "Write the profile as flat tables and arrays.") from None
    return parse_profile(data, name, path)


# --- finding profiles ------------------------------------------------------------------------------


def profile_dirs() -> list[Path]:
    """The folders searched for ``<name>.toml``, first match wins (see the module docstring)."""
    dirs = [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "profiles", PACKAGE_PROFILES, INSTALLED_PROFILES, USER_INSTALLED_PROFILES]
    seen: set[Path] = set()
    out = []
    for d in dirs:
        r = d.resolve()
        if r not in seen and r.is_dir():
            seen.add(r)
            out.append(r)
    return out


def profile_files() -> dict[str, Path]:
    """Profile name -> file, over :func:`profile_dirs` (an earlier folder shadows a later one)."""
    found: dict[str, Path] = {}
    for d in profile_dirs():
        for f in sorted(d.glob("*.toml")):
            found.setdefault(f.stem, f)
    return dict(sorted(found.items()))


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".toml") or os.sep in spec or "/" in spec


def resolve_profile_path(spec: str | Path) -> Path:
    """A profile name (``h100``) or a path (``profiles/h100.toml``, ``my.toml``; ``.toml`` may be
    left off a path) -> the file."""
    text = str(spec)
    p = Path(text).expanduser()
    if p.is_file():
        return p
    if p.with_name(p.name + ".toml").is_file():
        return p.with_name(p.name + ".toml")
    if _looks_like_path(text):
        raise UserError(f"Profile file {text} does not exist.", "Check the path, or give a profile name.")
    files = profile_files()
    if text in files:
        return files[text]
    near = closest(text, files)
    did = f"Did you mean {', '.join(near)}? " if near else ""
    where = ", ".join(str(d) for d in profile_dirs()) or "(no profile folder found)"
    raise UserError(
        f"Unknown profile {text!r}.",
        f"{did}Known profiles: {', '.join(files) or 'none'} (searched {where}; "
        f"add folders with ${ENV_VAR}). `lookupvit profiles` lists them.",
    )


def load_profile(spec: str | Path) -> Profile:
    """Load a profile by name or path and validate it."""
    return load_profile_file(resolve_profile_path(spec))


@dataclass(frozen=True)
class ProfileListing:
    """One row of `lookupvit profiles`: the profile, or the error that makes it unusable."""

    name: str
    path: Path
    profile: Profile | None
    error: str | None = None


def list_profiles() -> list[ProfileListing]:
    """Every profile found, validated; an invalid one is listed with its error instead of raising."""
    rows = []
    for name, path in profile_files().items():
        try:
            rows.append(ProfileListing(name, path, load_profile_file(path)))
        except UserError as e:
            rows.append(ProfileListing(name, path, None, str(e)))
    return rows
