"""The build's side of TensorRT: a strongly typed engine build through Polygraphy (run in a child
process by :mod:`.child`). Running an engine is exporter/backends/tensorrt (its runner, loader, the
environment check, plugin loading and the optimisation-profile selector).

Rules relied upon:
- TensorRT 11 removed the fp16/int8/bf16/fp8 builder flags, implicit quantization and
  ``EXPLICIT_BATCH``; networks are parsed strongly typed (``NetworkFromOnnxPath(path,
  strongly_typed=True)`` on 10.x; on 11.x every network is, :func:`network_args`) and take the
  precision their graph declares, so :class:`~.plan.BuildPlan` carries no precision flags and none are
  set here (docs/architecture.md, Precisions). Polygraphy (0.53.6 and newer) sets ``EXPLICIT_BATCH``
  only for TensorRT before 10 (TensorRT-RTX before 1.5). Nothing on this path uses an API that 11.x
  removed; only full TensorRT 10.x/11.x and TensorRT-RTX run it (type-checked against tensorrt-stubs).
- Polygraphy selects TensorRT-RTX instead of TensorRT when ``POLYGRAPHY_USE_TENSORRT_RTX`` is set:
  ``polygraphy.config.USE_TENSORRT_RTX`` is read from it when ``polygraphy`` is first imported, and
  each ``polygraphy.backend.trt`` module binds ``tensorrt`` or ``tensorrt_rtx`` when it is imported.
  :func:`load_tensorrt` therefore sets the switch before importing ``polygraphy.backend.trt``, and
  refuses to switch once that import happened in this process.
- An engine with several optimisation profiles runs the one its execution context has selected
  (TensorRT's ``IExecutionContext.set_optimization_profile_async``; Polygraphy's ``TrtRunner`` takes
  ``optimization_profile=`` at activation and ``set_profile(index)`` after). The runner here selects,
  before each inference, the profile the engine's sidecar lists for the feed's batch and grid
  (:class:`.plan.ProfileSelector`), so a dynamic-grid engine runs each grid with its own profile.
- Polygraphy logs through ``G_LOGGER`` (to stdout by default); during a build its messages are routed
  through Python's ``logging`` instead, so ``--json`` output stays clean and the builder's warnings
  end up in the engine's sidecar.

Everything TensorRT-specific is imported lazily: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends.tensorrt.loader import load_tensorrt
from ..errors import UserError
from .plan import BuildPlan, BuildProgress

if TYPE_CHECKING:  # type-checked against tensorrt-stubs; bound at run time by load_tensorrt()
    import tensorrt as trt
else:
    from ..backends.tensorrt.loader import trt


# --- Polygraphy's log, captured -----------------------------------------------------------------

_PREFIX = re.compile(r"^\s*\[[A-Z!]\]\s*")


@dataclass
class BuildLog:
    """Warnings and errors Polygraphy (and TensorRT through it) reported during a build."""

    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self, log: BuildLog) -> None:
        super().__init__(level=logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        text = _PREFIX.sub("", record.getMessage()).strip()
        (self.log.errors if record.levelno >= logging.ERROR else self.log.warnings).append(text)


@contextlib.contextmanager
def captured_polygraphy_log() -> Iterator[BuildLog]:
    """Route Polygraphy's ``G_LOGGER`` into a :class:`BuildLog` for the duration of the block."""
    from polygraphy.logger import G_LOGGER

    log = BuildLog()
    handler = _Collect(log)
    py_logger = logging.getLogger("Polygraphy")
    saved = (G_LOGGER.use_python_logging_system, G_LOGGER.module_severity, G_LOGGER.colors)
    saved_py = (py_logger.level, py_logger.propagate)
    G_LOGGER.use_python_logging_system = True
    G_LOGGER.module_severity = G_LOGGER.WARNING  # warnings are wanted even where Polygraphy was quietened
    G_LOGGER.colors = False
    py_logger.setLevel(logging.WARNING)
    py_logger.propagate = False
    py_logger.addHandler(handler)
    try:
        yield log
    finally:
        py_logger.removeHandler(handler)
        G_LOGGER.use_python_logging_system, G_LOGGER.module_severity, G_LOGGER.colors = saved
        py_logger.setLevel(saved_py[0])
        py_logger.propagate = saved_py[1]


# --- building -----------------------------------------------------------------------------------


def _progress_monitor(sink: BuildProgress) -> trt.IProgressMonitor:
    class Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str, num_steps: int) -> None:
            with contextlib.suppress(Exception):
                sink.phase_start(phase_name, parent_phase or None, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            with contextlib.suppress(Exception):
                sink.step(phase_name, step)
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with contextlib.suppress(Exception):
                sink.phase_finish(phase_name)

    return Monitor()


@dataclass(frozen=True)
class BuiltEngine:
    seconds: float
    layers: int
    engine_bytes: int
    warnings: list[str]


def _polygraphy_profiles(plan: BuildPlan) -> list[Any]:
    from polygraphy.backend.trt import Profile

    out = []
    for shapes in plan.config_args()["profiles"]:
        p = Profile()
        for name, (lo, opt, hi) in shapes.items():
            p.add(name, min=lo, opt=opt, max=hi)
        out.append(p)
    return out


def _create_config(plan: BuildPlan, progress: BuildProgress | None) -> Any:
    from polygraphy.backend.trt import CreateConfig

    args = plan.config_args()
    pools = {getattr(trt.MemoryPoolType, k): v for k, v in args.pop("memory_pool_limits").items()}
    level_name = args.pop("hardware_compatibility_level")
    level = getattr(trt.HardwareCompatibilityLevel, level_name) if level_name else None
    capabilities = [tuple(c) for c in args.pop("compute_capabilities", [])]
    args.update(
        profiles=_polygraphy_profiles(plan),
        memory_pool_limits=pools,
        hardware_compatibility_level=level,
        progress_monitor=_progress_monitor(progress) if progress and hasattr(trt, "IProgressMonitor") else None,
    )
    if plan.backend == "tensorrt-rtx":
        from polygraphy.backend.tensorrt_rtx import CreateConfigRTX

        return CreateConfigRTX(compute_capabilities=capabilities or None, **args)
    return CreateConfig(**args)


def _failure(plan: BuildPlan, err: Exception, log: BuildLog) -> UserError:
    details = "\n".join(f"  {e}" for e in log.errors[-8:]) or f"  {err}"
    return UserError(
        f"TensorRT could not build {plan.onnx.name} for profile {plan.profile}:\n{details}",
        "Check that every op is supported by this TensorRT version (`polygraphy inspect capability "
        f"{plan.onnx}` lists the unsupported ones) and that the precision stage's casts/Q-DQ pairs are "
        "valid for a strongly typed network.",
    )


def network_args(plan: BuildPlan) -> dict[str, Any]:
    """``NetworkFromOnnxPath``'s arguments for this TensorRT: strongly typed through the creation flag
    where it exists (TensorRT 10.x, TensorRT-RTX); TensorRT 11 builds every network strongly typed and
    may not carry the flag (its migration guide: weak typing removed), so it is not asked for there."""
    args = plan.network_args()
    if args.get("strongly_typed") and not hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        args["strongly_typed"] = False  # strongly typed regardless
    return args


def build_engine_file(plan: BuildPlan, dest: Path, progress: BuildProgress | None = None) -> BuiltEngine:
    """Build ``plan`` and write the serialized engine to ``dest``, in this process: run it through
    :func:`exporter.engine.child.build_in_child`, which isolates the builder's crashes. The engine is
    built to bytes and never deserialized here (Polygraphy's ``EngineBytesFromNetwork``): a
    TensorRT-RTX build ahead of time needs no GPU, and deserializing would. ``layers`` counts the
    parsed network's layers (the engine's own layers are known only once it is deserialized)."""
    load_tensorrt(plan.backend)
    from polygraphy.backend.trt import EngineBytesFromNetwork, NetworkFromOnnxPath
    from polygraphy.exception import PolygraphyException

    if plan.timing_cache is not None:
        plan.timing_cache.parent.mkdir(parents=True, exist_ok=True)
    with captured_polygraphy_log() as log:
        try:
            config = _create_config(plan, progress)
            builder, network, parser = NetworkFromOnnxPath(**network_args(plan))()
            layers = int(network.num_layers)
            start = time.perf_counter()
            blob = EngineBytesFromNetwork((builder, network, parser), config, **plan.engine_args())()
            seconds = time.perf_counter() - start
        except PolygraphyException as e:
            raise _failure(plan, e, log) from None
        data = bytes(blob)
        dest.write_bytes(data)
        del blob
    return BuiltEngine(seconds, layers, len(data), list(dict.fromkeys(log.warnings)))
