"""OpenVINO's CPU plugin as a registered backend (exporter/backends/registry.py), reading the graphs
converted for ONNX Runtime (standard ONNX ops, Q/DQ int8) at fp32 inference precision
(:mod:`.runner` says why). It runs the chain's fp32 and int8 graphs; the ``openvino`` extra is optional."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...profiles import OPENVINO_PRECISIONS
from ...profiles.profile import BACKEND_BENCHMARK_KEYS
from ..base import Timer, error_line, one_image
from ..registry import Backend, Candidate, Timing, Tried, register

if TYPE_CHECKING:
    import numpy as np


@register
class OpenVinoBackend(Backend):
    key = "openvino"
    name = "openvino"
    title = "OpenVINO"
    aliases = ("ov",)
    runs = "graph"
    graphs_for = "onnxruntime"
    precisions = OPENVINO_PRECISIONS
    cpu_threads = True
    by_default = False  # an optional extra: timed when named
    timing_options = tuple(k for k, owners in BACKEND_BENCHMARK_KEYS.items() if "openvino" in owners)  # PERFORMANCE_HINT
    install = "pip install -e '.[openvino]' (or pip install openvino)"

    def missing(self) -> str:
        from .runner import openvino_missing

        return openvino_missing()

    def describe(self) -> str:
        from ...versions import package_version

        return f"openvino {package_version('openvino')} (CPU, f32)"

    def timer(self, model: Any, call: Timing) -> Timer:
        from .timer import ov_timer

        return ov_timer(model, call.batch, call.shape, call.threads, call.hint, grid=call.fed)

    def candidate(self, path: Path) -> Candidate:
        from .runner import OpenVinoRunner, compile_onnx

        compile_onnx(path)  # refuses here, with the fix, what OpenVINO cannot read
        return Candidate(OpenVinoRunner(path, name="openvino"), "openvino (CPU, f32)", path)

    def tried(self, path: Path, precision: str, sample: dict[str, np.ndarray]) -> Tried:
        from .runner import OpenVinoRunner

        runner = OpenVinoRunner(path, name=f"openvino-{precision}")
        try:
            with runner:
                runner.infer(one_image(sample))
        except Exception as e:
            return Tried(None, f"OpenVINO cannot run this graph: {error_line(getattr(e, 'message', e))}")
        return Tried(OpenVinoRunner(path, name=f"openvino-{precision}"))
