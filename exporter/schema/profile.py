"""The schema of a deployment profile (``profiles/*.toml``, read by :mod:`exporter.profiles`): one frozen
pydantic model per TOML table, and :class:`ProfileFile` for the file's top level.

Each field states a key's default, type and range, what the key means (docs/profiles.md's "Every key" is
generated from these fields by exporter.profiles.reference) and the form an error says it expects
(:func:`_key`). The config is :data:`~.types.TOML_TABLE`: strict types (a boolean is no integer, an integer
no string), no NaN or infinity, unknown keys refused. TOML spellings that differ from an attribute are read
here: ``workspace``/``host_memory`` (sizes such as ``"8GiB"``), ``timing_cache = false``, ``batch.opt`` as
one batch or a list, ``cluster.resources`` as a table. :func:`profile_problem` turns pydantic's first error
into the message a person reads (file, ``table.key``, expected, found; or the closest valid key).

What depends on other keys or on the hardware (fp8 needs sm_89, ``min <= opt <= max``, ``[builder]`` only
for TensorRT ...) and the defaults that do (``cluster.gpus``, ``builder.timing_cache``) are rules of
:func:`exporter.profiles.parse_profile`; the variants and grids of ``[models]``/``[grids]`` are resolved there
too (exporter.models).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, cast, get_args

from pydantic import BaseModel, BeforeValidator, Field, PositiveInt, ValidationError, model_validator
from pydantic.fields import FieldInfo

from ..errors import UserError, closest
from ..precisions import PRECISIONS
from .types import TOML_TABLE

Backend = Literal["onnxruntime", "openvino", "tensorrt", "tensorrt-rtx"]
HardwareCompatibility = Literal["none", "ampere_plus", "same_compute_capability"]
PerformanceHint = Literal["latency", "throughput"]

BACKENDS: tuple[str, ...] = get_args(Backend)
PERFORMANCE_HINTS: tuple[str, ...] = get_args(PerformanceHint)
HARDWARE_LEVELS: tuple[str, ...] = get_args(HardwareCompatibility)
TIMING_CACHE = "timing-cache/{profile}.cache"  # builder.timing_cache when the profile leaves it out
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

# --- value forms a TOML key may take -------------------------------------------------------------------

_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
               "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40}
SIZE_EXPECTED = 'a positive size such as "8GiB", "512MiB" or a byte count'
SIZE_HINT = 'Use the binary units KiB, MiB, GiB or TiB ("GB" is ambiguous and not accepted).'
CC_EXPECTED = 'a compute capability like "9.0" or "sm_89"'
CC_HINT = "Write the GPU's compute capability as major.minor in quotes, e.g. compute_capability = \"8.9\"."


def size_bytes(value: object) -> int:
    """A byte count: a positive integer, or a string with a binary unit (``"512MiB"``, ``"8GiB"``); ValueError
    otherwise ("GB" is refused: decimal or binary is ambiguous)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value)
        if m and m.group(2).lower() in _SIZE_UNITS:
            size = float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
            if 0 < size < float(1 << 62):  # hundreds of digits read as a float are infinite, not a size
                return int(size)
    raise ValueError(SIZE_EXPECTED)


def compute_capability(value: object) -> tuple[int, int]:
    """``"9.0"``, ``9.0``, ``"sm_90"`` or ``"8.9"`` -> ``(major, minor)``; ValueError otherwise."""
    text = str(value).strip().lower()
    m = re.fullmatch(r"(\d+)\.(\d)", text) or re.fullmatch(r"sm_?(\d+)(\d)", text)
    if isinstance(value, bool) or not isinstance(value, str | float | int) or not m:
        raise ValueError(CC_EXPECTED)
    return int(m.group(1)), int(m.group(2))


def format_size(n: int) -> str:
    """``17179869184`` -> ``"16GiB"``: the largest binary unit that divides ``n``."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return f"{n}B"


def _listed(value: Any) -> Any:
    """A TOML array read as a tuple (the settings are frozen and hashable); other values meet the type check."""
    return tuple(value) if isinstance(value, list) else value


def _one_or_listed(value: Any) -> Any:
    """``batch.opt``: one batch, or an array of them."""
    return (value,) if isinstance(value, int) and not isinstance(value, bool) else _listed(value)


Listed = BeforeValidator(_listed)
Size = Annotated[int, BeforeValidator(size_bytes)]
OptionalSize = Annotated[int | None, BeforeValidator(lambda v: v if v is None else size_bytes(v))]
ComputeCapability = Annotated[tuple[int, int] | None,
                              BeforeValidator(lambda v: v if v is None or isinstance(v, tuple) else compute_capability(v))]
GridSpecs = Annotated[tuple[PositiveInt | str, ...] | None, Listed]  # checked against each model when resolved


def _key(default: Any, means: str, expects: str, *, hint: str | None = None, over: tuple[str, str] | None = None,
         under: tuple[str, str] | None = None, default_text: str | None = None, **constraints: Any) -> Any:
    """One key of a profile table: its default (``...``: required), what it means (docs/profiles.md), the form
    an error says it expects and that error's hint, the (message, hint) for a value past its upper (``over``)
    or lower (``under``) bound when that message is not "expected ...", its default in words when it depends
    on other keys, and pydantic's constraints (``ge``, ``le``, ``max_length``, ``validation_alias`` ...)."""
    extra: dict[str, Any] = {"expected": expects, "hint": hint, "over": over, "under": under,
                             "default_text": default_text}
    return Field(default, description=means,
                 json_schema_extra={k: v for k, v in extra.items() if v is not None}, **constraints)


def _beyond(key: str) -> tuple[str, str]:
    """The message for a [benchmark] value past its :data:`LIMITS` entry."""
    limit, unit = LIMITS[key]
    return (f"{{key}} = {{value!r}} is beyond {limit} {unit}.",
            f"Use a value up to {limit}; the defaults are sound for most machines.")


# --- the tables -----------------------------------------------------------------------------------


class ModelRun(BaseModel):
    """One model a run exports, with the compressed grids to use (empty for a ViT baseline)."""

    model_config = TOML_TABLE
    variant: str
    grids: tuple[tuple[int, ...], ...] = ()

    @property
    def grid_labels(self) -> list[str]:
        from ..models import grid_label

        return [grid_label(g) for g in self.grids]


def _named(value: Any) -> Any:
    """A model in ``[models]`` is written as its variant name (no table: TOML gives a string); its grids are
    resolved by exporter.profiles.parse_profile."""
    if isinstance(value, str):
        return ModelRun(variant=value)
    if isinstance(value, ModelRun):
        return value
    raise ValueError("a variant name")


NamedRun = Annotated[ModelRun, BeforeValidator(_named)]
VARIANTS = "a list of variant names"


class Models(BaseModel):
    """``[models]``: what `lookupvit run --profile` exports and measures."""

    model_config = TOML_TABLE
    accuracy: Annotated[tuple[NamedRun, ...], Listed] = _key(
        (), "variants whose top-1 is measured per precision and grid", VARIANTS)
    latency: Annotated[tuple[NamedRun, ...], Listed] = _key(
        (), "variants timed per grid x precision x batch next to the baseline", VARIANTS)
    baseline: NamedRun | None = _key(
        None, "the plain ViT of the same width, timed next to the latency models", "a variant name (a plain ViT)")
    latency_precisions: Annotated[tuple[str, ...], Listed] = _key(
        (), "the latency models' precisions, a subset of `precisions` (empty: all of them)",
        "a list of precisions (a subset of precisions)")
    latency_batches: Annotated[tuple[PositiveInt, ...], Listed] = _key(
        (), "the latency models' batches, a subset of `batch.opt` (empty: all of them)",
        "a list of batch sizes (a subset of batch.opt)")
    dynamic_grid: bool = _key(
        False, "one dynamic-grid graph per LookupViT serves all its grids (docs/dynamic-grid.md)",
        "true or false (one dynamic-grid graph per LookupViT)")

    @property
    def all(self) -> list[ModelRun]:
        runs = [*self.accuracy, *self.latency]
        return runs + ([self.baseline] if self.baseline else [])


GRID_SPECS = 'a list of grids such as [3, 5, 7] or ["4x7x7"]'


class Grids(BaseModel):
    """``[grids]``: the grids of each role's models as written (None: each model's own); the resolved
    grids are in :attr:`Models.accuracy` / :attr:`Models.latency`."""

    model_config = TOML_TABLE
    accuracy: GridSpecs = _key(
        None, 'grids of the accuracy models (`[3, 5, 7]`, `"7x7"`, `"4x7x7"`), checked against each model',
        GRID_SPECS, default_text="each model's grids")
    latency: GridSpecs = _key(None, "grids of the latency models", GRID_SPECS, default_text="each model's grids")


class BatchSettings(BaseModel):
    """``[batch]``: the engine's batch range and the latency-critical batches inside it.

    Each latency-critical batch ``opt`` gets its own TensorRT optimisation profile
    ``(min, opt, max)``, so the kernels are tuned at that batch while any batch in ``min..max``
    still runs. The benchmark measures exactly these batches.
    """

    model_config = TOML_TABLE
    min: int = _key(1, "the smallest batch an engine takes", "a positive integer", ge=1)
    opt: Annotated[tuple[PositiveInt, ...], BeforeValidator(_one_or_listed)] = _key(
        (1,), "the latency-critical batches: one TensorRT optimisation profile each, and the batches timed",
        "a positive integer or a non-empty list of them (the latency-critical batches)", default_text="`[min]`",
        min_length=1, max_length=MAX_OPT_PROFILES,
        over=(f"batch: {{count}} opt batches; each is an optimisation profile, at most {MAX_OPT_PROFILES}.",
              "Keep the latency-critical batches only, e.g. opt = [1, 8, 64]."))
    max: int = _key(1, "the largest batch an engine takes", "a positive integer", default_text="the largest of `opt`",
                    ge=1, le=MAX_BATCH,
                    over=(f"batch: max = {{value}} is beyond {MAX_BATCH}; no engine is tuned for such batches.",
                          "Use the batch sizes the deployment serves, e.g. max = 128."))

    @model_validator(mode="before")
    @classmethod
    def _dependent_defaults(cls, data: Any) -> Any:
        """``opt`` defaults to ``[min]`` and ``max`` to the largest ``opt`` (docs/profiles.md, ``[batch]``)."""
        if not isinstance(data, dict):
            return data
        data = {"opt": [data.get("min", cls.model_fields["min"].default)], **data}
        opt = _one_or_listed(data["opt"])
        if "max" not in data and isinstance(opt, tuple) and opt and all(type(o) is int for o in opt):
            data["max"] = max(opt)
        return data

    def optimization_profiles(self) -> list[tuple[int, int, int]]:
        return [(self.min, o, self.max) for o in self.opt]


class BuilderSettings(BaseModel):
    """``[builder]``: TensorRT builder settings (no precision flags: the graph carries precision)."""

    model_config = TOML_TABLE
    optimization_level: int = _key(3, "TensorRT's builder optimisation level, 0..5", "an integer 0..5",
                                   ge=0, le=5)  # TensorRT's default is 3
    workspace_bytes: Size = _key(  # MemoryPoolType.WORKSPACE limit
        4 << 30, "the builder's workspace memory pool (KiB, MiB, GiB, TiB or a byte count)", SIZE_EXPECTED,
        hint=SIZE_HINT, validation_alias="workspace", le=MAX_GPU_MEMORY,
        over=("{key} = {value!r} is larger than any GPU's memory.", 'Use e.g. workspace = "16GiB".'))
    timing_cache: Annotated[str | None, BeforeValidator(lambda v: None if v is False or v == "" else v)] = _key(
        None, "the timing cache file, relative to the build's `-o` folder; `false` disables it",
        "a path (relative paths resolve against the build's -o folder) or false to disable",
        default_text=f'`"{TIMING_CACHE.format(profile="<profile>")}"`')
    timeout_s: float = _key(1800.0, "one build's time bound (the builder runs in a child process)",
                            "seconds, more than 0 and at most a week", gt=0, le=7 * 86400)
    host_memory_bytes: OptionalSize = _key(  # None: 3/4 of this machine's memory
        None, "one build's memory bound on this machine", SIZE_EXPECTED, hint=SIZE_HINT,
        default_text="three quarters of this machine's memory", validation_alias="host_memory", ge=256 << 20,
        under=("{key} = {value!r} is too small for a TensorRT build.",
               "Give the builder at least \"1GiB\" (the default is three quarters of this machine's memory)."))


class PickSettings(BaseModel):
    """``[pick]``: the latency budget the run's report recommends a setting for (what
    ``lookupvit pick RUN --latency-ms L [--min-top1 T] [--percentile P]`` chooses)."""

    model_config = TOML_TABLE
    latency_ms: float | None = _key(  # None: the report shows the Pareto front, no single choice
        None, "the latency budget the report recommends a setting for (one batch call, ms)",
        "a latency in milliseconds, more than 0", gt=0, le=3_600_000)
    min_top1: float | None = _key(None, "with `latency_ms`: the fastest setting reaching this top-1 (0..100)",
                                  "a top-1 in percent, 0..100", ge=0, le=100)
    percentile: Literal["p50", "p99"] = _key("p50", "`p50` or `p99`: the latency the budget is for", '"p50" or "p99"')


class Compatibility(BaseModel):
    """``[compatibility]``: whether the engine must run on other GPUs or TensorRT versions."""

    model_config = TOML_TABLE
    hardware: HardwareCompatibility = _key(
        "none", "`none`, `ampere_plus` or `same_compute_capability`: GPUs the engine runs on",
        f"one of {', '.join(HARDWARE_LEVELS)}")
    version_compatible: bool = _key(False, "the engine runs on later TensorRT versions", "true or false")
    exclude_lean_runtime: bool = _key(
        False, "with `version_compatible`: leave the lean runtime out of the engine", "true or false")


class BenchmarkSettings(BaseModel):
    """``[benchmark]``: a measurement warms up for at least ``warmup`` calls and ``warmup_seconds``,
    then runs at least ``iterations`` calls and at least ``seconds`` in ``repeats`` interleaved
    rounds; a cell whose round medians vary by more than ``noise_threshold`` (coefficient of
    variation, a fraction) is flagged noisy, and its group timed again up to ``retries`` times; up to
    ``pace_wait`` seconds per sweep go to waiting out the machine's slow phases (exporter.latency.pace)."""

    # The one statement of every measurement default: a profile's omitted [benchmark] keys, `lookupvit
    # latency`'s options and exporter.latency's SweepSettings all take these.
    model_config = TOML_TABLE
    warmup: int = _key(5, "untimed calls per cell first, at least", "a non-negative integer (untimed iterations)",
                       ge=0, le=LIMITS["warmup"][0], over=_beyond("warmup"))
    iterations: int = _key(20, "timed calls per cell, at least", "a positive integer",
                           ge=1, le=LIMITS["iterations"][0], over=_beyond("iterations"))
    seconds: float = _key(1.0, "and timing for at least this long", "a non-negative number of seconds",
                          ge=0, le=LIMITS["seconds"][0], over=_beyond("seconds"))
    # ONNX Runtime intra-op / OpenVINO inference threads (0: every core; "auto": tried per cell, the fewest within 5% of
    # the fastest, exporter.latency.sweep) / host threads feeding a GPU
    threads: Annotated[int, Field(ge=0, le=LIMITS["threads"][0])] | Literal["auto"] = _key(
        "auto", "CPU threads (0: every core; `\"auto\"`: tried per cell) / host threads feeding a GPU",
        "a non-negative integer (0: every core) or \"auto\" (tried per cell)", over=_beyond("threads"))
    cuda_graphs: bool = _key(False, "capture the enqueue in a CUDA graph and replay it (GPU profiles)",
                             "true or false")
    warmup_seconds: float = _key(0.2, "with `warmup`: warm-up for at least this long", "a non-negative number of seconds",
                                 ge=0, le=LIMITS["warmup_seconds"][0], over=_beyond("warmup_seconds"))
    repeats: int = _key(5, "interleaved rounds the calls are split into (LookupViT, ViT, ...)",
                        "a positive integer (interleaved rounds)", ge=1, le=LIMITS["repeats"][0], over=_beyond("repeats"))
    noise_threshold: float = _key(
        0.05, "flag a cell whose round medians vary by more than this fraction (CV)",
        "a fraction from 0 to below 1 (0.05: flag cells whose round medians vary by 5%)", ge=0, lt=1)
    retries: int = _key(1, "times a group with a noisy cell is timed again (the quietest attempt stands)",
                        "a non-negative integer (times a noisy group is timed again)",
                        ge=0, le=LIMITS["retries"][0], over=_beyond("retries"))
    pace_wait: float = _key(60.0, "seconds a sweep may wait out the machine's slow phases (0: only flag them)",
                            "a non-negative number of seconds (0: flag slow phases, never wait)",
                            ge=0, le=LIMITS["pace_wait"][0], over=_beyond("pace_wait"))
    hint: PerformanceHint = _key(  # OpenVINO's PERFORMANCE_HINT: one stream (latency) or several (throughput)
        "latency", "OpenVINO's performance hint, `latency` or `throughput` (OpenVINO profiles only)",
        f"one of {', '.join(map(repr, PERFORMANCE_HINTS))} (OpenVINO's performance hint)")


Units = Annotated[float, Field(ge=0, le=MAX_CLUSTER_UNITS)]


class ClusterSettings(BaseModel):
    """``[cluster]``: what a node must offer to run this profile's device work in a Ray cluster
    (``lookupvit run --cluster``): the build, validation, comparison and latency stages.

    ``accelerator`` is one of Ray's accelerator types (``H100``, ``L4``, ...; a node with such a GPU
    advertises the resource ``accelerator_type:<type>``), ``gpus`` the GPUs a task holds, ``cpus``
    the CPUs it holds, and ``resources`` custom resources a node was started with
    (``ray start --resources '{"jetson-orin": 1}'``) for hardware Ray does not name.
    """

    model_config = TOML_TABLE
    accelerator: str | None = _key(None, "one of Ray's accelerator types (`H100`, `L4` ...) a node must have",
                                   "one of Ray's accelerator types, e.g. \"H100\"")
    gpus: Units = _key(0.0, "GPUs the profile's device work holds on a node",
                       f"a number of GPUs from 0 to {MAX_CLUSTER_UNITS}", default_text="1 on a TensorRT profile, else 0")
    cpus: Units = _key(1.0, "CPUs it holds", f"a number of CPUs from 0 to {MAX_CLUSTER_UNITS}")
    resources: Annotated[tuple[tuple[str, Units], ...],  # a TOML table, kept as its (name, amount) pairs sorted
                         BeforeValidator(lambda v: tuple(sorted(v.items())) if isinstance(v, dict) else v)] = _key(
        (), "custom resources a node was started with (`{ \"jetson-orin\" = 0.001 }`)",
        f"a table of custom resource amounts, e.g. {{ \"jetson-orin\" = 1 }} (each 0 to {MAX_CLUSTER_UNITS})")

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


class ProfileFile(BaseModel):
    """A profile file's top level, as written: its keys in the order docs/profiles.md lists them."""

    model_config = TOML_TABLE
    description: str = _key("", "one line saying what the profile is for", "a string")
    gpu: str = _key("", "the GPU's name, as reports show it", "a string (the GPU's name)")
    gpu_memory: OptionalSize = _key(  # bytes; bounds builder.workspace
        None, "the GPU's memory (`\"80GiB\"`); bounds `builder.workspace`; TensorRT profiles only", SIZE_EXPECTED,
        hint=SIZE_HINT, le=MAX_GPU_MEMORY,
        over=("{key} = {value!r} is outside 1 B .. 512 GiB.", "Give the GPU's memory, e.g. gpu_memory = \"80GiB\" for an H100."))
    backend: Backend = _key(..., "`onnxruntime` or `openvino` (CPU), `tensorrt` or `tensorrt-rtx` (GPU)",
                            f"one of {', '.join(BACKENDS)}")
    compute_capability: ComputeCapability = _key(
        None, "the GPU's, `\"9.0\"` for an H100; required for TensorRT, refused on a CPU profile", CC_EXPECTED,
        hint=CC_HINT, default_text="(required for TensorRT)")
    precisions: Annotated[tuple[str, ...], Listed] = _key(
        ..., f"the precisions to build and measure, from {', '.join(PRECISIONS)}",
        f"a list of precisions from {', '.join(PRECISIONS)}")
    models: Models = _key(Models(), "the table `[models]` below", "a table [models]")
    grids: Grids = _key(Grids(), "the table `[grids]` below", "a table [grids]")
    batch: BatchSettings = _key(BatchSettings(), "the table `[batch]` below", "a table [batch]")
    builder: BuilderSettings = _key(BuilderSettings(), "the table `[builder]` below (TensorRT only)", "a table [builder]")
    compatibility: Compatibility = _key(Compatibility(), "the table `[compatibility]` below (TensorRT only)",
                                        "a table [compatibility]")
    benchmark: BenchmarkSettings = _key(BenchmarkSettings(), "the table `[benchmark]` below", "a table [benchmark]")
    cluster: ClusterSettings = _key(ClusterSettings(), "the table `[cluster]` below", "a table [cluster]")
    pick: PickSettings = _key(PickSettings(), "the table `[pick]` below", "a table [pick]")


# --- keys and errors ---------------------------------------------------------------------------------


def keys_of(model: type[BaseModel]) -> tuple[str, ...]:
    """A table's TOML keys, in declaration order."""
    return tuple(cast(str, f.validation_alias or name) for name, f in model.model_fields.items())


# table name -> its model, and every table's keys (docs/profiles.md, "Every key"; unknown keys name the closest)
TABLE_MODELS: dict[str, type[BaseModel]] = {
    name: cast(type[BaseModel], f.annotation) for name, f in ProfileFile.model_fields.items()
    if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
}
TOP_KEYS = keys_of(ProfileFile)
MODELS_KEYS, GRIDS_KEYS, BATCH_KEYS = keys_of(Models), keys_of(Grids), keys_of(BatchSettings)
BUILDER_KEYS, COMPAT_KEYS, BENCH_KEYS = keys_of(BuilderSettings), keys_of(Compatibility), keys_of(BenchmarkSettings)
CLUSTER_KEYS, PICK_KEYS = keys_of(ClusterSettings), keys_of(PickSettings)


def field_of(model: type[BaseModel], key: str) -> tuple[str, FieldInfo, dict[str, Any]]:
    """The attribute a TOML ``key`` of ``model`` fills, its field, and what :func:`_key` recorded for it."""
    name, field = next((n, f) for n, f in model.model_fields.items() if (f.validation_alias or n) == key)
    return name, field, cast(dict[str, Any], field.json_schema_extra or {})


_OVER = {"less_than_equal", "less_than", "too_long"}
_UNDER = {"greater_than_equal", "greater_than", "too_short"}


def expected_error(src: str, key: str, expected: str, value: object, hint: str | None = None) -> UserError:
    """``FILE: table.key: expected FORM, got VALUE.``: the form of every message about one key's value."""
    return UserError(f"{src}: {key}: expected {expected}, got {value!r}.", hint or f"Fix '{key}' in {src}.")


def profile_problem(e: ValidationError, data: Mapping[str, Any], src: str) -> UserError:
    """The first problem pydantic found, as the file reads (a table's unknown keys before its values), as a
    UserError naming the key (``table.key``), the form :func:`_key` says it expects and the value found."""
    errors = e.errors(include_url=False)

    def place(i: int) -> tuple[int, bool, int]:
        top = str(errors[i]["loc"][0]) if errors[i]["loc"] else ""
        return TOP_KEYS.index(top) if top in TOP_KEYS else -1, errors[i]["type"] != "extra_forbidden", i

    err = errors[min(range(len(errors)), key=place)]
    loc = err["loc"]
    table = str(loc[0]) if len(loc) > 1 and loc[0] in TABLE_MODELS else ""
    key = str(loc[1] if table else loc[0])
    model = TABLE_MODELS[table] if table else ProfileFile
    where = f"{table}.{key}" if table else key
    if err["type"] == "extra_forbidden":
        keys = keys_of(model)
        near = closest(key, keys, n=1)
        did = f"Did you mean '{table + '.' if table else ''}{near[0]}'? " if near else ""
        return UserError(f"{src}: unknown key '{where}'.",
                         f"{did}Valid keys {f'in [{table}]' if table else 'at the top level'}: {', '.join(keys)}.")
    *_, extra = field_of(model, key)
    if err["type"] == "missing":
        return UserError(f"{src}: missing key '{where}' ({extra['expected']}).", f"Add {where} = ... to {src}.")
    written = data.get(table, {}) if table else data
    value = written[key] if isinstance(written, dict) and key in written else err["input"]
    at = tuple(loc[:2] if table else loc[:1])
    kinds = {x["type"] for x in errors if tuple(x["loc"][:len(at)]) == at}  # a union's members report one each
    for side, bound in (("over", _OVER), ("under", _UNDER)):
        if side in extra and kinds & bound:
            message, hint = extra[side]
            count = len(value) if isinstance(value, list | tuple) else 0
            return UserError(f"{src}: " + message.format(key=where, value=value, count=count), hint)
    return expected_error(src, where, extra["expected"], value, extra.get("hint"))
