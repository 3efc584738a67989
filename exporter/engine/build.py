"""`lookupvit build`: one strongly typed TensorRT engine per (ONNX graph, profile), cached.

docs/architecture.md, The stages. The order matters: every check that can fail on bad input (profile,
ONNX file, precision, input shapes) and the environment check (TensorRT, GPU) run before anything
is written; the engine is then built, in a child process bounded in time and memory (:mod:`.child`),
into a temporary file and renamed into place, and its sidecar is written last, so a crash leaves no
half-written engine and never a sidecar without its engine.

Where no GPU is visible, TensorRT-RTX builds ahead of time for the profile's compute capability
(:func:`exporter.backends.tensorrt.env.build_target`); the sidecar's ``build`` entry says so, and that the engine
has not been executed.

Output layout: ``DIR/engines/<profile>/<model-stem>.<precision>.plan`` with the sidecar
``<model-stem>.<precision>.plan.json`` next to it, and the profile's timing cache (by default
``DIR/timing-cache/<profile>.cache``). :func:`build_engine` always builds; whether an earlier engine
stands is the folder's manifest's decision (:func:`exporter.pipeline.steps.build_step`, keyed by
:func:`build_settings` and the ONNX file's sha256), which reads the result back from the sidecar
(:meth:`BuildResult.from_sidecar`).
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends.tensorrt import env
from ..backends.tensorrt.plugin import load_plugin
from ..io import atomic_path, sha256_file, write_json
from ..profiles import Profile, load_profile
from ..schema.sidecars import EngineSidecar
from ..versions import tool_versions
from .plan import (
    BuildPlan,
    BuildProgress,
    OnnxInput,
    cache_key,
    check_tensorrt_profile,
    make_build_plan,
    read_onnx,
    resolve_precision,
)


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
    target: str  # the compute capability compiled for (TensorRT-RTX), or the GPU tuned on (full TensorRT)
    ahead_of_time: bool  # built without a GPU: never deserialized or executed here
    build_seconds: float
    layers: int  # layers of the parsed network
    engine_bytes: int
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_sidecar(cls, engine: Path, side: EngineSidecar) -> BuildResult:
        """The result of the build that wrote ``engine`` and its sidecar, read back as reused; ValueError
        when the sidecar lacks what a build writes (its cache key, profile and precision)."""
        if side.cache is None or side.profile is None or side.precision is None:
            raise ValueError(f"the sidecar of {engine.name} records no build (cache, profile, precision)")
        return cls(
            engine, Path(f"{engine}.json"), True, side.cache.key, side.profile.name, side.precision,
            side.cache.tensorrt_version, side.cache.target, side.build.ahead_of_time, side.build_seconds, side.layers,
            side.engine_bytes, list(side.warnings),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": str(self.engine),
            "sidecar": str(self.sidecar),
            "cached": self.cached,
            "cache_key": self.cache_key,
            "profile": self.profile,
            "precision": self.precision,
            "tensorrt": self.tensorrt,
            "target": self.target,
            "ahead_of_time": self.ahead_of_time,
            "build_seconds": round(self.build_seconds, 3),
            "layers": self.layers,
            "engine_bytes": self.engine_bytes,
            "warnings": self.warnings,
        }


def build_settings(prof: Profile, precision: str, target: env.BuildTarget) -> dict[str, Any]:
    """What an engine is built from besides its ONNX file: the stage's settings in the manifest (the
    profile's build hash, the precision, the TensorRT flavour and version, the target), so a folder
    moved to a machine that builds differently builds again."""
    return {"profile": prof.name, "build_hash": prof.build_hash, "precision": precision,
            "tensorrt": target.choice.label, "target": target.label}


def build_engine(req: BuildRequest, progress: BuildProgress | None = None) -> BuildResult:
    """Build the engine of a prepared request (:func:`prepare_build`); see the module docstring. Raises :class:`CannotRunHere`, before writing anything, where no TensorRT here can
    build for the profile (:func:`exporter.backends.tensorrt.env.build_target`); :class:`exporter.check.CheckFailed`
    (exit 1) for a graph TensorRT's parser would refuse, before TensorRT is looked for; and
    :class:`~.child.BuildFailed` (exit 1) when the builder refuses the graph, crashes or exceeds its
    time or memory bound (the build runs in a child process: :mod:`.child`)."""
    from ..check import CheckFailed, check_graph
    from .child import BuildLimits, build_in_child

    prof = req.profile
    if not (readiness := check_graph(req.onnx.path, prof)).passed:
        raise CheckFailed(readiness)
    target = env.build_target(prof)
    choice = target.choice
    plugin = load_plugin(req.onnx.path, choice.backend)  # None without plugin nodes; UserError if it cannot load
    plan = make_build_plan(prof, req.onnx, req.precision, req.out_dir, backend=choice.backend)

    onnx_sha = sha256_file(plan.onnx)
    key = cache_key(onnx_sha, prof.build_hash, choice.label, target.label)

    limits = BuildLimits(prof.builder.timeout_s, prof.builder.host_memory_bytes)
    with atomic_path(plan.engine) as tmp:
        built = build_in_child(plan, tmp, progress, limits)
    engine_sha = sha256_file(plan.engine)
    where = ("ahead of time on a machine without a GPU: not deserialized or executed by this build"
             if target.ahead_of_time else f"on {target.gpu.name if target.gpu else 'this GPU'}: not executed by this build")
    sidecar = {
        "kind": "tensorrt-engine",
        "engine": plan.engine.name,
        "cache": {
            "key": key,
            "onnx_sha256": onnx_sha,
            "profile_hash": prof.build_hash,
            "tensorrt_version": choice.label,
            "target": target.label,
        },
        "build": {**target.to_dict(), "executed": False, "note": f"built for {target.label} {where}"},
        "onnx": {"path": str(plan.onnx.resolve()), "sha256": onnx_sha, "metadata": req.onnx.metadata},
        "input": {"name": req.onnx.input_name, "shape": list(req.onnx.input_shape)},
        "precision": req.precision,
        "profile": {"name": prof.name, "path": str(prof.path.resolve()), "hash": prof.build_hash,
                    "settings": prof.build_settings()},
        "tensorrt": {"backend": choice.backend, "module": choice.module, "version": choice.version},
        "gpu": target.gpu.to_dict() if target.gpu else None,
        "plan": plan.to_dict(),
        "plugin": plugin.to_dict() if plugin else None,
        "build_seconds": round(built.seconds, 3),
        "layers": built.network_layers,
        "engine_bytes": built.engine_bytes,
        "engine_sha256": engine_sha,
        "warnings": built.warnings,
        "versions": {**tool_versions(), choice.module: choice.version},
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    write_json(plan.sidecar, sidecar)
    return BuildResult(
        plan.engine, plan.sidecar, False, key, prof.name, req.precision, choice.label, target.label,
        target.ahead_of_time, built.seconds, built.network_layers, built.engine_bytes, built.warnings,
    )


@dataclass(frozen=True)
class TrialBuild:
    """What the real builder did with a graph (``lookupvit check --build``): built, refused (the
    builder's messages), crashed (the signal), timeout or memory; the engine itself is not kept."""

    status: str  # built | refused | crashed | timeout | memory
    tensorrt: str
    target: str
    ahead_of_time: bool
    seconds: float
    engine_bytes: int | None
    message: str

    @property
    def built(self) -> bool:
        return self.status == "built"

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "tensorrt": self.tensorrt, "target": self.target,
                "ahead_of_time": self.ahead_of_time, "seconds": round(self.seconds, 3),
                "engine_bytes": self.engine_bytes, "message": self.message}


def trial_build(onnx_path: str | Path, profile: str | Path | Profile) -> TrialBuild:
    """Parse and build ``onnx_path`` for ``profile`` with the real builder (in a child process, into a
    private folder next to the graph that is removed afterwards), whatever the static check says.
    Raises :class:`UserError` for bad input and :class:`CannotRunHere` where no TensorRT here builds
    for the profile."""
    import time

    from ..io import private_folder
    from .child import BuildFailed, BuildLimits, build_in_child

    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    check_tensorrt_profile(prof)
    info = read_onnx(onnx_path)
    precision = resolve_precision(info, None, prof)
    target = env.build_target(prof)
    t0 = time.perf_counter()
    with private_folder(Path(onnx_path), ".trial") as scratch:
        plan = make_build_plan(prof, info, precision, scratch, backend=target.choice.backend)
        plan.engine.parent.mkdir(parents=True, exist_ok=True)
        limits = BuildLimits(prof.builder.timeout_s, prof.builder.host_memory_bytes)
        try:
            built = build_in_child(plan, plan.engine, None, limits)
        except BuildFailed as e:
            return TrialBuild(e.kind, target.choice.label, target.label, target.ahead_of_time,
                              time.perf_counter() - t0, None, e.message)
    return TrialBuild("built", target.choice.label, target.label, target.ahead_of_time, built.seconds,
                      built.engine_bytes, f"{built.engine_bytes / 2**20:.1f} MiB in {built.seconds:.1f} s")
