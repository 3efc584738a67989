"""OpenVINO's CPU plugin over an ONNX graph, and its Polygraphy runner.

Relies on the OpenVINO documentation: ``Core.read_model`` reads ONNX directly (the ONNX frontend);
``Core.compile_model(model, "CPU", config)`` with the properties ``PERFORMANCE_HINT`` (``LATENCY``:
one stream using the cores for each request; ``THROUGHPUT``: several streams),
``INFERENCE_NUM_THREADS`` and ``INFERENCE_PRECISION_HINT``. The CPU plugin's default inference
precision is bf16 on processors with AVX-512 BF16 or AMX, so ``f32`` is set explicitly: the project
compares and times fp32 graphs. The hint sets the floating-point precision only: an int8 graph's
QuantizeLinear/DequantizeLinear pairs are still folded into int8 kernels by the plugin's
low-precision transformations (OpenVINO documentation, "Low Precision Transformations"; the int8
``lookupvit_digits`` graph compiles to int8 ``FullyConnected`` layers). Graphs written for ONNX
Runtime only (``optimize --form cpu`` with ``skip-layernorm`` writes ``com.microsoft`` contrib
ops) are refused with the fix: give OpenVINO the plain export.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from polygraphy.backend.base import BaseRunner
from polygraphy.common import TensorMetadata
from polygraphy.datatype import DataType

from ...errors import CannotRunHere, UserError
from ...profiles import PERFORMANCE_HINTS


def openvino_missing() -> str:
    """Why OpenVINO cannot run here ("" when it can)."""
    try:
        import openvino  # noqa: F401
    except ImportError as e:
        return f"OpenVINO is not installed ({e}); install the extra: pip install -e '.[openvino]'"
    return ""


def _contrib_ops(path: Path) -> list[str]:
    from ...onnx_io import load_onnx

    model = load_onnx(path, weights=False)
    return sorted({n.op_type for n in model.graph.node if n.domain not in ("", "ai.onnx")})


def compile_onnx(path: str | Path, threads: int = 0, hint: str = "latency", batch: int | None = None):
    """``path`` compiled for OpenVINO's CPU plugin (fp32; ``batch`` fixes the batch dimension)."""
    missing = openvino_missing()
    if missing:
        raise CannotRunHere(missing, "pip install -e '.[openvino]'")
    if hint not in PERFORMANCE_HINTS:
        raise UserError(f"Unknown OpenVINO hint {hint!r}.", f"Choose from {', '.join(PERFORMANCE_HINTS)}.")
    import openvino as ov

    path = Path(path)
    foreign = _contrib_ops(path)
    if foreign:
        raise UserError(f"{path.name} holds operators OpenVINO does not read ({', '.join(foreign)}): it was "
                        "optimised for ONNX Runtime (optimize --form cpu) or carries plugins.",
                        "Give OpenVINO the plain export (or a graph optimised with --form attention).")
    core = ov.Core()
    model = core.read_model(str(path))
    if batch is not None:
        first = model.inputs[0]
        shape = first.get_partial_shape()
        shape[0] = batch
        model.reshape({first.get_any_name(): shape})
    config: dict[str, str | int] = {"PERFORMANCE_HINT": hint.upper(), "INFERENCE_PRECISION_HINT": "f32"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    return core.compile_model(model, "CPU", config)


class OpenVinoRunner(BaseRunner):
    """Runs an ONNX graph on OpenVINO's CPU plugin (fp32), for Polygraphy's Comparator."""

    def __init__(self, path: str | Path, threads: int = 0, hint: str = "latency", name: str | None = None):
        super().__init__(name=name, prefix="openvino-runner")
        self.path, self.threads, self.hint = Path(path), threads, hint

    def activate_impl(self) -> None:
        self.compiled = compile_onnx(self.path, self.threads, self.hint)
        self.request = self.compiled.create_infer_request()

    def get_input_metadata_impl(self) -> TensorMetadata:
        meta = TensorMetadata()
        for port in self.compiled.inputs:
            shape = [d.get_length() if d.is_static else None for d in port.get_partial_shape()]
            meta.add(port.get_any_name(), DataType.from_dtype(np.dtype(port.get_element_type().to_dtype())), shape)
        return meta

    def infer_impl(self, feed_dict: dict[str, np.ndarray]) -> OrderedDict[str, np.ndarray]:
        start = time.perf_counter()
        result = self.request.infer({k: np.ascontiguousarray(v) for k, v in feed_dict.items()})
        self.inference_time = time.perf_counter() - start
        return OrderedDict((port.get_any_name(), np.array(result[port])) for port in self.compiled.outputs)

    def deactivate_impl(self) -> None:
        del self.request, self.compiled
