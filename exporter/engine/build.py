"""`lookupvit build`: one strongly typed TensorRT engine per (ONNX graph, profile), cached.

docs/architecture.md, The stages. The order matters: every check that can fail on bad input (profile,
ONNX file, precision, input shapes) and the environment check (TensorRT, GPU) run before anything
is written; the engine is then built into a temporary file and renamed into place, and its sidecar
is written last, so a crash leaves no half-written engine and never a sidecar without its engine.

Output layout: ``DIR/engines/<profile>/<model-stem>.<precision>.plan`` with the sidecar
``<model-stem>.<precision>.plan.json`` next to it, and the profile's timing cache (by default
``DIR/timing-cache/<profile>.cache``). An identical request (same cache key: ONNX sha256, profile
build hash, TensorRT version, GPU name) reuses the engine unless ``force``.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CannotRunHere
from ..io import atomic_path, sha256_file, write_json
from ..profiles import Profile, list_profiles, load_profile
from ..versions import tool_versions
from . import env
from .plan import (
    BuildPlan,
    BuildProgress,
    OnnxInput,
    cache_key,
    check_tensorrt_profile,
    make_build_plan,
    read_onnx,
    read_sidecar,
    resolve_precision,
)
from .plugin import load_plugin


@dataclass(frozen=True)
class BuildRequest:
    """The validated, environment-independent part of a build: safe to compute anywhere."""

    profile: Profile
    onnx: OnnxInput
    precision: str
    out_dir: Path
    plan: BuildPlan  # as it would be for the profile's preferred TensorRT flavour


def prepare_build(
    onnx_path: str | Path, profile: str | Path | Profile, precision: str | None = None, out_dir: str | Path = "."
) -> BuildRequest:
    """Load and check everything a build needs from the user; raises :class:`UserError`."""
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    check_tensorrt_profile(prof)
    info = read_onnx(onnx_path)
    prec = resolve_precision(info, precision, prof)
    plan = make_build_plan(prof, info, prec, out_dir, backend="tensorrt-rtx" if prof.backend == "tensorrt-rtx" else "tensorrt")
    return BuildRequest(prof, info, prec, Path(out_dir), plan)


@dataclass(frozen=True)
class BuildResult:
    engine: Path
    sidecar: Path
    cached: bool
    cache_key: str
    profile: str
    precision: str
    tensorrt: str
    gpu: str
    build_seconds: float
    layers: int
    engine_bytes: int
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": str(self.engine),
            "sidecar": str(self.sidecar),
            "cached": self.cached,
            "cache_key": self.cache_key,
            "profile": self.profile,
            "precision": self.precision,
            "tensorrt": self.tensorrt,
            "gpu": self.gpu,
            "build_seconds": round(self.build_seconds, 3),
            "layers": self.layers,
            "engine_bytes": self.engine_bytes,
            "warnings": self.warnings,
        }


def check_gpu_matches(profile: Profile, gpu: env.GpuInfo, choice: env.TensorRTChoice) -> None:
    """Full TensorRT tunes an engine for the GPU it builds on: building an sm_90 profile on an sm_89
    GPU would give an L4 engine labelled H100. Allowed when the profile asks for hardware
    compatibility; TensorRT-RTX compiles for the profile's compute capability instead."""
    want, have = profile.compute_capability, gpu.compute_capability
    if choice.backend == "tensorrt-rtx" or want is None or have is None or want == have:
        return
    if profile.compatibility.hardware != "none":
        return
    matching = [
        r.name for r in list_profiles() if r.profile is not None and r.profile.compute_capability == have
    ]
    use = f"use --profile {' or --profile '.join(matching)}, " if matching else ""
    raise CannotRunHere(
        f"Profile {profile.name} targets {profile.sm} ({profile.gpu or 'its GPU'}), but this GPU is "
        f"{gpu.name} ({gpu.sm}): TensorRT would tune the engine for the GPU it builds on.",
        f"Build on a {profile.sm} GPU, {use}or set compatibility.hardware = \"ampere_plus\" in {profile.path}.",
    )


def _cached(plan: BuildPlan, key: str) -> dict[str, Any] | None:
    meta = read_sidecar(plan.sidecar)
    if not meta or meta.get("cache", {}).get("key") != key or not plan.engine.is_file():
        return None
    if plan.engine.stat().st_size != meta.get("engine_bytes") or sha256_file(plan.engine) != meta.get("engine_sha256"):
        return None  # the engine changed after its sidecar was written
    return meta


def build_engine(req: BuildRequest, force: bool = False, progress: BuildProgress | None = None) -> BuildResult:
    """Build (or reuse) the engine of a prepared request (:func:`prepare_build`); see the module
    docstring. Raises :class:`UserError`, before writing anything, without TensorRT or a GPU, and
    :class:`exporter.check.CheckFailed` (exit 1) for a graph TensorRT's ONNX parser would refuse,
    before TensorRT is looked for."""
    from ..check import CheckFailed, check_graph

    prof = req.profile
    if not (readiness := check_graph(req.onnx.path, prof)).passed:
        raise CheckFailed(readiness)
    choice, gpu = env.require_build_environment(prof.backend)
    check_gpu_matches(prof, gpu, choice)
    plugin = load_plugin(req.onnx.path, choice.backend)  # None without plugin nodes; UserError if it cannot load
    plan = make_build_plan(prof, req.onnx, req.precision, req.out_dir, backend=choice.backend)

    onnx_sha = sha256_file(plan.onnx)
    key = cache_key(onnx_sha, prof.build_hash, choice.label, gpu.name)
    if not force and (meta := _cached(plan, key)) is not None:
        return BuildResult(
            plan.engine, plan.sidecar, True, key, prof.name, req.precision, choice.label, gpu.name,
            float(meta.get("build_seconds", 0.0)), int(meta.get("layers", 0)), int(meta.get("engine_bytes", 0)),
            list(meta.get("warnings", [])),
        )

    from .trt import build_engine_file  # the only TensorRT-facing import

    with atomic_path(plan.engine) as tmp:
        built = build_engine_file(plan, tmp, progress)
    engine_sha = sha256_file(plan.engine)
    sidecar = {
        "kind": "tensorrt-engine",
        "engine": plan.engine.name,
        "cache": {
            "key": key,
            "onnx_sha256": onnx_sha,
            "profile_hash": prof.build_hash,
            "tensorrt_version": choice.label,
            "gpu": gpu.name,
        },
        "onnx": {"path": str(plan.onnx.resolve()), "sha256": onnx_sha, "metadata": req.onnx.metadata},
        "input": {"name": req.onnx.input_name, "shape": list(req.onnx.input_shape)},
        "precision": req.precision,
        "profile": {"name": prof.name, "path": str(prof.path.resolve()), "hash": prof.build_hash,
                    "settings": prof.build_settings()},
        "tensorrt": {"backend": choice.backend, "module": choice.module, "version": choice.version},
        "gpu": gpu.to_dict(),
        "plan": plan.to_dict(),
        "plugin": plugin.to_dict() if plugin else None,
        "build_seconds": round(built.seconds, 3),
        "layers": built.layers,
        "engine_bytes": built.engine_bytes,
        "engine_sha256": engine_sha,
        "warnings": built.warnings,
        "versions": {**tool_versions(), choice.module: choice.version},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    write_json(plan.sidecar, sidecar)
    return BuildResult(
        plan.engine, plan.sidecar, False, key, prof.name, req.precision, choice.label, gpu.name,
        built.seconds, built.layers, built.engine_bytes, built.warnings,
    )
