"""ONNX Runtime as a registered backend (exporter/backends/registry.py): the graphs converted for
ONNX Runtime, on its CUDA execution provider when installed, else the CPU.

In an accuracy comparison a graph is tried on one image first. When the session fails at ONNX
Runtime's default optimisation level, it is tried again at the basic level, which skips the fusions
of Q/DQ pairs into ONNX Runtime's own integer kernels (those reject fp8, for example), so the Q/DQ
pairs run as written: the numerics of the graph, without ONNX Runtime's quantized kernels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import UserError
from ..base import Timer, error_line, one_image
from ..registry import Backend, Candidate, Timing, Tried, register

if TYPE_CHECKING:
    import numpy as np


@register
class OnnxRuntimeBackend(Backend):
    key = "ort"
    name = "onnxruntime"
    title = "ONNX Runtime"
    aliases = ("ort",)
    runs = "graph"
    graphs_for = "onnxruntime"
    cpu_threads = True

    def describe(self) -> str:
        from ...versions import package_version
        from .session import ort_providers

        return f"onnxruntime {package_version('onnxruntime')} ({ort_providers()[0]})"

    def timer(self, model: Any, call: Timing) -> Timer:
        from .timer import ort_timer

        return ort_timer(model, call.batch, call.shape, call.threads, grid=call.fed)

    def candidate(self, path: Path) -> Candidate:
        from .session import ort_providers, ort_runner

        providers = ort_providers()
        try:
            runner = ort_runner(path, providers, name="onnxruntime")
        except Exception as e:
            raise UserError(f"ONNX Runtime cannot load {path}: {e}") from None
        return Candidate(runner, f"onnxruntime ({providers[0]})", path)

    def tried(self, path: Path, precision: str, sample: dict[str, np.ndarray]) -> Tried:
        import onnxruntime as ort

        from .session import ort_providers, ort_runner

        providers = ort_providers()
        feed = one_image(sample)
        default_error = _try_session(path, providers, feed, None)
        if default_error is None:
            return Tried(ort_runner(path, providers, name=f"onnxruntime-{precision}"))
        basic = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        if _try_session(path, providers, feed, basic) is not None:
            return Tried(None, f"ONNX Runtime ({providers[0]}) cannot run this graph: {default_error}")
        note = (f"run at ONNX Runtime's basic optimisation level (Q/DQ pairs executed as written): at the default "
                f"level the session fails with {default_error}")
        return Tried(ort_runner(path, providers, name=f"onnxruntime-{precision}", level=basic), note=note)


def _try_session(path: Path, providers: list[str], feed: dict[str, np.ndarray], level: Any) -> str | None:
    """None when ONNX Runtime creates a session for ``path`` and runs ``feed``; else the reason."""
    from .session import ort_session

    try:
        ort_session(path, providers, level=level).run(None, feed)
    except Exception as e:
        return error_line(e)
    return None
