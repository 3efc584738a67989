"""TensorRT as a registered backend (exporter/backends/registry.py): engines built from the graphs
converted for TensorRT, by full TensorRT or TensorRT-RTX (:mod:`.env`), run through Polygraphy's
runner (:mod:`.runner`).

Building and running are two questions here. The preflight asks whether a profile's engines can be
built on this machine: full TensorRT needs the profile's GPU; TensorRT-RTX compiles ahead of time for
the compute capabilities in its ``ComputeCapability`` enum, with or without a GPU (:func:`.env.build_target`).
:meth:`TensorRTBackend.missing` asks whether an engine can run here: that always needs TensorRT and a
CUDA GPU (deserializing an engine needs one), so a machine that only builds reports its timings and
validations as not run, with this reason.

The preflight runs before any heavy work (``run``, ``latency``, ``compare --backend tensorrt``,
``build``), so a TensorRT profile on a machine that cannot build its engines fails within seconds,
having written nothing, instead of exporting and converting gigabytes of graphs. Its error names the
realistic alternative: ``run --prepare-only`` exports, optimises and converts the graphs the profile
will build (and checks them against the parser's rules), so that only the build and the measurements
run on the target machine. A TensorRT engine is specific to the GPU it is built for (TensorRT developer
guide, "Engine compatibility"): full TensorRT needs a GPU of the profile's compute capability here
unless the profile asks for hardware compatibility (:func:`.env.check_gpu_matches`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import CannotRunHere, UserError
from ..base import Timer, error_line
from ..registry import Backend, Candidate, Setup, Timing, Tried, register

if TYPE_CHECKING:
    import numpy as np

    from ...profiles import Profile


@register
class TensorRTBackend(Backend):
    key = "trt"
    name = "tensorrt"
    title = "TensorRT"
    aliases = ("trt", "tensorrt-rtx")
    runs = "engine"
    graphs_for = "tensorrt"
    install = "pip install -e '.[tensorrt]' (full TensorRT) or -e '.[tensorrt-rtx]' (TensorRT-RTX)"

    def missing(self) -> str:
        from . import env

        choice, why = env.choose_tensorrt()
        missing = []
        if choice is None:
            missing.append(f"TensorRT is not installed ({why})")
        if env.detect_gpu() is None:
            missing.append("no CUDA GPU is visible")
        return "; ".join(missing)

    def preflight(self, profile: Profile, verb: str) -> None:
        from .env import build_target

        try:
            build_target(profile, f"run profile {profile.name} ({verb})")
        except CannotRunHere as e:
            raise CannotRunHere(
                e.message,
                f"{e.hint} To prepare the work here and build on a machine with {profile.gpu or 'the profile GPU'}: "
                f"lookupvit run --profile {profile.name} --prepare-only -o DIR (exports, optimises and converts the "
                "graphs the profile builds, and checks them for TensorRT).",
            ) from None

    def require(self, profile: Profile | None, verb: str) -> None:
        """With a TensorRT profile, its preflight (the profile's engines can be built here); otherwise
        TensorRT and a GPU (an engine is timed or run where it is built)."""
        if profile is not None and profile.is_tensorrt:
            self.preflight(profile, verb)
        else:
            from .env import require_build_environment

            require_build_environment("tensorrt", action=verb)

    def timer(self, model: Any, call: Timing) -> Timer:
        from .timer import trt_timer

        return trt_timer(model, call.batch, call.shape, grid=call.fed)

    def candidate(self, path: Path) -> Candidate:
        from .runner import trt_runner
        from .sidecar import engine_source

        onnx_path, meta = engine_source(path)
        runner = trt_runner(path, name="tensorrt")  # fails here, naming the fix, without TensorRT or a GPU
        info, prof = meta.tensorrt, meta.profile
        batch = prof.settings.batch if prof is not None else None
        return Candidate(
            runner, f"tensorrt ({info.backend if info else 'tensorrt'} {(info.version if info else None) or '?'}, "
                    f"profile {prof.name if prof else '?'})",
            onnx_path, meta.precision or "fp32", (batch.min, batch.max) if batch is not None else (1, 1 << 30),
        )

    def setup(self, profile: Profile | None, verb: str) -> Setup:
        """The profile the comparison builds for: the one named (checked first, so a typo is an error even
        where TensorRT is missing), else the shipped profile whose compute capability is this GPU's."""
        from ...profiles import list_profiles
        from .env import require_build_environment

        if profile is not None and not profile.is_tensorrt:
            raise UserError(f"Profile {profile.name} runs on {profile.backend}; {verb} builds TensorRT engines for a GPU "
                            "profile.", "Name a TensorRT profile (`lookupvit profiles` lists them), e.g. --profile l4.")
        if profile is not None:  # fail within seconds, before any export, writing nothing
            self.preflight(profile, verb)
        choice, gpu = require_build_environment("tensorrt", action=f"compare on TensorRT engines ({verb})")
        if profile is None:
            matching = [r.profile for r in list_profiles() if r.profile is not None and r.profile.is_tensorrt
                        and r.profile.compute_capability == gpu.compute_capability]
            if not matching:
                raise UserError(
                    f"No TensorRT profile targets this GPU ({gpu.name}, compute capability "
                    f"{'.'.join(map(str, gpu.compute_capability or ()))}).",
                    "Name one with --profile, or write one (`lookupvit profiles` lists them).",
                )
            profile = matching[0]
        return Setup(f"{choice.label} on {gpu.name}", profile, profile.batch.max)  # the engine's batch range

    def tried(self, path: Path, precision: str, sample: dict[str, np.ndarray]) -> Tried:
        from .runner import trt_runner

        try:
            return Tried(trt_runner(path, name=f"tensorrt-{precision}"))
        except UserError as e:
            return Tried(None, f"TensorRT cannot run the {precision} graph: {e.message}")
        except Exception as e:  # a runtime failure: report it in the cell
            return Tried(None, f"TensorRT failed on the {precision} graph: {error_line(e)}")
