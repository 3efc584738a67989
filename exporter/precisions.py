"""The precisions this tool knows, in one registry: what each is, where it runs, how it is made.

TensorRT builds strongly typed networks (TensorRT developer guide, "Strongly Typed Networks"): a
tensor's type comes from the ONNX graph, so a precision is a property of the graph, written by the
precision stage (:mod:`exporter.precision`), never a builder flag. This module holds only the
facts every stage needs about a precision; nothing here imports a runtime.

- ``fp32``: the exported graph as it is;
- ``fp16`` / ``bf16``: the graph cast, with fp32 islands (:mod:`exporter.precision.cast`);
- ``int8`` / ``fp8`` (E4M3FN): Q/DQ pairs calibrated on images (:mod:`exporter.precision.quantize`).

GPU support (NVIDIA's compute-capability tables, as TensorRT uses them): bf16 tensor cores from
sm_80 (Ampere); fp8 on sm_89 (Ada) and from sm_90 (Hopper); fp32, fp16 and int8 on every GPU that
TensorRT 10 supports. ONNX Runtime's CPU provider has no bf16 or fp8 kernels worth timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .errors import UserError

Method = Literal["none", "cast", "quantize"]


@dataclass(frozen=True)
class Precision:
    name: str
    method: Method  # how the precision stage makes the graph
    min_compute_capability: tuple[int, int] | None = None  # None: every GPU TensorRT supports
    onnxruntime_cpu: bool = True  # ONNX Runtime's CPU provider runs it (worth timing)
    torch: bool = True  # PyTorch eager runs the model in it (the latency package's torch backend)

    def runs_on(self, compute_capability: tuple[int, int]) -> bool:
        need = self.min_compute_capability
        return need is None or compute_capability >= need


_REGISTRY: dict[str, Precision] = {}


def register_precision(precision: Precision) -> Precision:
    """Register ``precision`` (its order of registration is the order everything lists them in)."""
    if precision.name in _REGISTRY:
        raise RuntimeError(f"precision {precision.name} registered twice")
    _REGISTRY[precision.name] = precision
    return precision


register_precision(Precision("fp32", "none"))
register_precision(Precision("fp16", "cast"))
register_precision(Precision("bf16", "cast", (8, 0), onnxruntime_cpu=False))
register_precision(Precision("int8", "quantize", torch=False))
register_precision(Precision("fp8", "quantize", (8, 9), onnxruntime_cpu=False, torch=False))

PRECISIONS: tuple[str, ...] = tuple(_REGISTRY)
ONNXRUNTIME_CPU_PRECISIONS: tuple[str, ...] = tuple(p.name for p in _REGISTRY.values() if p.onnxruntime_cpu)
TORCH_PRECISIONS: tuple[str, ...] = tuple(p.name for p in _REGISTRY.values() if p.torch)


def get_precision(name: str) -> Precision:
    """The registered precision ``name`` (case-insensitive), or a UserError listing them."""
    p = _REGISTRY.get(str(name).lower())
    if p is None:
        raise UserError(f"Unknown precision {name!r}.", f"Choose one of {', '.join(PRECISIONS)}.")
    return p
