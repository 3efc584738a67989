"""Deployment profiles: one TOML file per target GPU (or the CPU), read into a :class:`Profile`.

docs/architecture.md, The backend axis. A profile says what to build and measure on one kind of machine: the backend,
the GPU's compute capability, the precisions worth building there, the batch range with one
TensorRT optimisation profile per latency-critical batch, the compressed grids, the builder
settings, hardware/version compatibility, the benchmark settings, and the models a full run
exports (`[models]`).

The schema is pydantic v2 models in the project's schema layer (:mod:`exporter.schema.profile`: every key's
default, type, range and meaning, stated once). Reading a profile is: the text bounded
(:func:`exporter.schema.check_toml`), parsed by ``tomllib``, validated as a
:class:`~exporter.schema.profile.ProfileFile`, then the rules here, which span keys or name the hardware
(:func:`parse_profile`). Every error names the file, the key, what was expected and what was found, or the
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
import os
import site
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import ValidationError

from ..errors import UserError, closest
from ..precisions import ONNXRUNTIME_CPU_PRECISIONS, PRECISIONS, get_precision
from ..schema.profile import (
    BACKENDS,
    CC_EXPECTED,
    CC_HINT,
    GRIDS_KEYS,
    SIZE_EXPECTED,
    SIZE_HINT,
    TABLE_MODELS,
    TIMING_CACHE,
    TOP_KEYS,
    ClusterSettings,
    Grids,
    Listed,
    ModelRun,
    Models,
    ProfileFile,
    compute_capability,
    expected_error,
    format_size,
    keys_of,
    profile_problem,
    size_bytes,
)
from ..schema.profile import BatchSettings as BatchSettings  # re-exported: callers import the settings from here
from ..schema.profile import BenchmarkSettings as BenchmarkSettings
from ..schema.profile import BuilderSettings as BuilderSettings
from ..schema.profile import Compatibility as Compatibility
from ..schema.profile import PickSettings as PickSettings

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
MIN_TENSORRT_CC = (7, 5)
# Ray's accelerator types for NVIDIA GPUs (ray.util.accelerators); other hardware uses custom resources
RAY_NVIDIA_ACCELERATORS = ("V100", "P100", "T4", "P4", "K80", "A10G", "L4", "L40S", "A100", "H100", "H200", "H20",
                           "B200")

ENV_VAR = "LOOKUPVIT_PROFILES"
PACKAGE_PROFILES = Path(__file__).resolve().parent.parent.parent / "profiles"
INSTALLED_PROFILES = Path(sys.prefix) / "share" / "lookupvit-deploy" / "profiles"
USER_INSTALLED_PROFILES = Path(site.getuserbase()) / "share" / "lookupvit-deploy" / "profiles"  # pip --user


def parse_size(value: object, where: str) -> int:
    """A byte count: an integer, or a string with a binary unit (``"512MiB"``, ``"8GiB"``)."""
    try:
        return size_bytes(value)
    except ValueError:
        raise UserError(f"{where}: expected {SIZE_EXPECTED}, got {value!r}.", SIZE_HINT) from None


def parse_compute_capability(value: object, where: str = "compute_capability") -> tuple[int, int]:
    """``"9.0"``, ``9.0``, ``"sm_90"`` or ``"8.9"`` -> ``(major, minor)``."""
    try:
        return compute_capability(value)
    except ValueError:
        raise UserError(f"{where}: expected {CC_EXPECTED}, got {value!r}.", CC_HINT) from None


def gpu_has_precision(cc: tuple[int, int], precision: str) -> bool:
    """Whether a GPU of compute capability ``cc`` runs ``precision`` natively in TensorRT.

    fp32/fp16/int8 on every GPU TensorRT 10 supports; bf16 from sm_80; fp8 on sm_89 and from
    sm_90 (the Ampere parts sm_86/sm_87 have bf16 but no fp8).
    """
    return get_precision(precision).runs_on(cc)


# --- the parsed profile ---------------------------------------------------------------------------


class Profile(ProfileFile):
    """A validated profile: its file's keys, its name (the file's stem) and path, and ``models`` with each
    model's grids resolved (``grids`` keeps the ``[grids]`` table as written)."""

    name: str
    path: Path
    precisions: Annotated[tuple[str, ...], Listed] = ("fp32",)  # required in a file, not of a Profile built in code

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
            "compatibility": self.compatibility.model_dump(),
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
            "builder": self.builder.model_dump(),
            "compatibility": self.compatibility.model_dump(),
            "benchmark": {k: v for k, v in self.benchmark.model_dump().items()
                          if self.backend in BACKEND_BENCHMARK_KEYS.get(k, (self.backend,))},
            "cluster": {**self.cluster.model_dump(), "resources": dict(self.cluster.resources)},
            "pick": self.pick.model_dump(),
            "build_hash": self.build_hash,
        }


# --- parsing: the schema, then the rules across keys ---------------------------------------------------


def parse_profile(data: Mapping[str, Any], name: str, path: Path) -> Profile:
    """Validate a decoded TOML document into a :class:`Profile`; raise :class:`UserError` on the
    first problem, naming the key, the expected form and the fix."""
    src = str(path)
    try:
        file = ProfileFile.model_validate(data, by_alias=True, by_name=False)  # TOML keys only, not attribute names
    except ValidationError as e:
        if set(data) <= set(TOP_KEYS):
            _backend_keys(data, src)  # a key the backend refuses is named as such, whatever its value
        raise profile_problem(e, data, src) from None
    _backend_keys(data, src)
    backend, cc, is_trt = file.backend, file.compute_capability, file.backend in TENSORRT_BACKENDS

    if cc is not None and cc < MIN_TENSORRT_CC:
        raise UserError(
            f"{src}: compute_capability {cc[0]}.{cc[1]} is older than TensorRT 10 supports "
            f"(sm_{MIN_TENSORRT_CC[0]}{MIN_TENSORRT_CC[1]} and newer).",
            "Use a Turing (7.5) or newer GPU for TensorRT, or the cpu profile with ONNX Runtime.",
        )
    _check_precisions(file, src)
    models = _resolve_models(file.models, file.grids, src)
    if file.gpu_memory is not None and not is_trt:
        raise UserError(f"{src}: gpu_memory is set but backend = \"{backend}\" runs on the CPU.",
                        "Remove gpu_memory from a CPU profile.")

    batch = file.batch
    for o in batch.opt:
        if batch.min > o:
            raise UserError(
                f"{src}: batch: min = {batch.min} is larger than opt = {o}; expected min <= opt <= max.",
                "Lower batch.min or raise the opt batch so that min <= every opt <= max.",
            )
        if o > batch.max:
            raise UserError(
                f"{src}: batch: opt = {o} is larger than max = {batch.max}; expected min <= opt <= max.",
                "Raise batch.max or lower the opt batch so that min <= every opt <= max.",
            )
    if len(set(batch.opt)) != len(batch.opt):
        raise expected_error(src, "batch.opt", "distinct batches (one optimisation profile each)", list(batch.opt))
    for key, allowed, listed in (("latency_precisions", file.precisions, models.latency_precisions),
                                 ("latency_batches", batch.opt, models.latency_batches)):
        extra = [v for v in listed if v not in allowed]
        if extra:
            raise UserError(f"{src}: models.{key} lists {extra}, which the profile does not measure ({list(allowed)}).",
                            f"models.{key} is a subset of the profile's {'precisions' if 'prec' in key else 'batch.opt'}.")

    builder, compat = file.builder, file.compatibility
    if file.gpu_memory is not None and builder.workspace_bytes > file.gpu_memory:
        workspace = data.get("builder", {}).get("workspace", format_size(builder.workspace_bytes))
        raise UserError(
            f"{src}: builder.workspace = {workspace!r} is larger than the GPU's memory "
            f"(gpu_memory = {data['gpu_memory']!r}).",
            "Give the builder at most the GPU's memory, e.g. workspace = \"16GiB\".",
        )
    if compat.hardware == "ampere_plus" and cc is not None and cc < (8, 0):
        raise UserError(
            f"{src}: compatibility.hardware = \"ampere_plus\" needs an Ampere or newer GPU, "
            f"but compute_capability is {cc[0]}.{cc[1]}.",
            "Use hardware = \"none\" for this GPU.",
        )
    if compat.exclude_lean_runtime and not compat.version_compatible:
        raise UserError(
            f"{src}: compatibility.exclude_lean_runtime = true needs version_compatible = true.",
            "Set compatibility.version_compatible = true, or drop exclude_lean_runtime.",
        )

    bench = file.benchmark
    if "hint" in bench.model_fields_set and backend not in BACKEND_BENCHMARK_KEYS["hint"]:
        raise UserError(
            f"{src}: benchmark.hint = {bench.hint!r} is OpenVINO's performance hint, but backend = \"{backend}\".",
            "Remove benchmark.hint, or set backend = \"openvino\".",
        )
    if bench.cuda_graphs and not is_trt:
        raise UserError(
            f"{src}: benchmark.cuda_graphs = true, but backend = \"{backend}\" has no CUDA graphs.",
            "Set benchmark.cuda_graphs = false in a CPU profile.",
        )
    _check_cluster(file.cluster, src)

    # the defaults that depend on other keys (docs/profiles.md, "Every key": stated there in words)
    if "timing_cache" not in builder.model_fields_set:
        builder = builder.model_copy(update={"timing_cache": TIMING_CACHE.format(profile=name)})
    cluster = file.cluster
    if "gpus" not in cluster.model_fields_set and is_trt:
        cluster = cluster.model_copy(update={"gpus": 1.0})  # a TensorRT profile's work holds one GPU
    return Profile(**{**dict(file), "name": name, "path": path, "models": models, "builder": builder,
                      "cluster": cluster})


def _backend_keys(data: Mapping[str, Any], src: str) -> None:
    """The keys a backend requires or refuses: compute_capability for TensorRT and only there; ``[builder]`` and
    ``[compatibility]`` for TensorRT only. Checked on the file as written, before the values of those keys (an
    unknown key in those tables is named first, by the schema)."""
    backend = data.get("backend")
    if backend not in BACKENDS:
        return  # the schema names a missing or unknown backend
    is_trt = backend in TENSORRT_BACKENDS
    if "compute_capability" in data and not is_trt:
        raise UserError(
            f"{src}: compute_capability is set but backend = \"{backend}\" runs on the CPU.",
            "Remove compute_capability, or set backend = \"tensorrt\" for a GPU profile.",
        )
    if "compute_capability" not in data and is_trt:
        raise UserError(
            f"{src}: missing key 'compute_capability' (required for backend \"{backend}\").",
            "Add the target GPU's compute capability, e.g. compute_capability = \"9.0\" for H100.",
        )
    for table in ("builder", "compatibility"):
        written = data.get(table)
        if isinstance(written, dict) and written and set(written) <= set(keys_of(TABLE_MODELS[table])) and not is_trt:
            raise UserError(
                f"{src}: [{table}] applies to TensorRT builds, but backend = \"{backend}\".",
                f"Remove the [{table}] table, or set backend = \"tensorrt\" with a compute_capability.",
            )


def _check_precisions(file: ProfileFile, src: str) -> None:
    """Each precision known, once, and run by the profile's hardware (the module docstring's rules)."""
    precisions, cc, backend = file.precisions, file.compute_capability, file.backend
    if not precisions:
        raise expected_error(src, "precisions", "at least one precision", [])
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
        if backend in CPU_PRECISIONS and p not in CPU_PRECISIONS[backend]:
            runtime = CPU_RUNTIME_NAMES[backend]
            raise UserError(
                f"{src}: precisions: {p} has no {runtime} CPU kernels worth measuring; "
                f"expected some of {', '.join(CPU_PRECISIONS[backend])} for backend = \"{backend}\".",
                f"Remove \"{p}\" from precisions of this {runtime} profile.",
            )
    if len(set(precisions)) != len(precisions):
        raise expected_error(src, "precisions", "each precision once", list(precisions))


def _check_cluster(cluster: ClusterSettings, src: str) -> None:
    """An accelerator Ray names, and no resource Ray sets itself."""
    if cluster.accelerator is not None and cluster.accelerator not in RAY_NVIDIA_ACCELERATORS:
        near = closest(cluster.accelerator, RAY_NVIDIA_ACCELERATORS, n=1)
        raise UserError(
            f"{src}: cluster.accelerator = {cluster.accelerator!r} is not one of Ray's NVIDIA accelerator types "
            f"({', '.join(RAY_NVIDIA_ACCELERATORS)}).",
            (f"Did you mean '{near[0]}'? " if near else "")
            + "For hardware Ray does not name, start its nodes with a custom resource "
            "(ray start --resources '{\"my-gpu\": 1}') and set cluster.resources = { \"my-gpu\" = 1 }.",
        )
    for k, _ in cluster.resources:
        if k.startswith("accelerator_type:") or k in ("CPU", "GPU", "memory", "object_store_memory"):
            raise UserError(f"{src}: cluster.resources names {k!r}, which Ray sets itself.",
                            "Use cluster.accelerator for a GPU type and cluster.gpus/cpus for counts.")


def _resolve_models(models: Models, grids: Grids, src: str) -> Models:
    """``[models]`` with each variant looked up (exporter.models) and its grids from ``[grids]`` checked
    against it, or its own default grids."""
    from ..models import get_variant, parse_grid

    def variant(name: str, key: str) -> Any:
        try:
            return get_variant(name)
        except UserError as e:
            raise UserError(f"{src}: models.{key}: {e.message}", e.hint) from None

    def runs(role: str) -> tuple[ModelRun, ...]:
        specs: tuple[int | str, ...] | None = getattr(grids, role)
        out = []
        for run in getattr(models, role):
            cfg = variant(run.variant, role).config
            if not cfg.default_grids:
                raise UserError(
                    f"{src}: models.{role}: {run.variant} is a plain ViT without a compressed grid.",
                    "List ViT baselines as models.baseline, and LookupViT variants under accuracy/latency.",
                )
            try:
                resolved = tuple(cfg.default_grids if specs is None else (parse_grid(s, cfg.lookup_grid) for s in specs))
            except UserError as e:
                raise UserError(f"{src}: grids.{role} ({run.variant}): {e.message}", e.hint) from None
            out.append(ModelRun(variant=run.variant, grids=resolved))
        return tuple(out)

    if models.baseline is not None and variant(models.baseline.variant, "baseline").config.default_grids:
        raise UserError(
            f"{src}: models.baseline: {models.baseline.variant} is a LookupViT; the baseline is the plain ViT "
            "of the same width.",
            "Use e.g. baseline = \"vit_b16\" next to lookupvit_b16.",
        )
    for role in GRIDS_KEYS:
        if role in grids.model_fields_set and not getattr(models, role):
            raise UserError(
                f"{src}: grids.{role} is set but models.{role} lists no model.",
                f"Add models.{role} = [\"...\"] or remove grids.{role}.",
            )
    if (models.latency_precisions or models.latency_batches) and not models.latency:
        raise UserError(f"{src}: models.latency_precisions/latency_batches are set but models.latency lists no model.",
                        "Add models.latency = [\"...\"] or remove them.")
    return models.model_copy(update={"accuracy": runs("accuracy"), "latency": runs("latency")})


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
    except ValueError as e:  # TOMLDecodeError, UnicodeDecodeError, an integer past Python's digit limit
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
