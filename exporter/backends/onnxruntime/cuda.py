"""ONNX Runtime's CUDA execution provider as a GPU backend: device-resident IO and CUDA graphs.

``sess.run(None, {name: numpy})`` on the CUDA provider copies every input to the GPU and every output
back on each call, so a timing of it measures PCIe as much as the model. :class:`CudaIoSession`
keeps the inputs and outputs on the GPU instead, through ONNX Runtime's IO binding: inputs are
uploaded once as CUDA ``OrtValue``s (``OrtValue.ortvalue_from_numpy(x, "cuda", id)``), outputs are
preallocated CUDA ``OrtValue``s of the shape the graph gives for that input, and ``run()`` is
``run_with_iobinding`` alone. Inputs are fed in the element type the graph declares (a graph whose
input is float16 gets float16).

CUDA graphs (provider option ``enable_cuda_graph``): ONNX Runtime captures the whole run on the first
call and replays it, which needs every node on the CUDA provider, no control flow (``If``, ``Loop``,
``Scan``), fixed input and output shapes, and inputs and outputs bound to fixed device buffers
(ONNX Runtime's CUDA execution provider documentation, "Using CUDA Graphs"). :func:`cuda_graph_blocker`
checks what can be checked from the file (control flow, output shapes resolvable for the bound
input); a capture that ONNX Runtime refuses at the first run (a node placed on the CPU) falls back
to a session without CUDA graphs, and the reason is kept in :attr:`CudaIoSession.note`.

The CUDA provider comes from the ``onnxruntime-gpu`` package (it provides the same ``onnxruntime``
module as the CPU package, which must be uninstalled first); without it :func:`cuda_providers`
raises a :class:`UserError` that says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UserError
from .session import ort_session

CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})
ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def cuda_providers(device_id: int = 0, cuda_graph: bool = False) -> list[Any]:
    """The provider list for a CUDA session (CUDA first, CPU for what CUDA lacks), or a UserError that
    names onnxruntime-gpu when this ONNX Runtime has no CUDA provider."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        raise UserError(
            f"ONNX Runtime {ort.__version__} here has no CUDA execution provider (it offers "
            f"{', '.join(available)}).",
            "Install the GPU build: pip uninstall -y onnxruntime && pip install onnxruntime-gpu (same `onnxruntime` "
            "module, with CUDAExecutionProvider); it needs an NVIDIA GPU with its driver and CUDA 12 libraries.",
        )
    options = {"device_id": str(device_id)}
    if cuda_graph:
        options["enable_cuda_graph"] = "1"
    return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]


def feed_dtype(ort_type: str) -> type[np.generic]:
    """The numpy type to feed an input declared as ``ort_type`` (e.g. ``tensor(float16)``)."""
    if ort_type not in ORT_TYPES:
        raise UserError(f"Input type {ort_type} cannot be fed from numpy here.", "Feed float, float16 or integer inputs.")
    return ORT_TYPES[ort_type]


def resolve_shape(declared: list[Any], bindings: dict[str, int]) -> tuple[int, ...] | None:
    """A declared shape with its symbolic dims replaced from ``bindings``; None if one stays unknown."""
    out = []
    for d in declared:
        if isinstance(d, int):
            out.append(d)
        elif isinstance(d, str) and d in bindings:
            out.append(bindings[d])
        else:
            return None
    return tuple(out)


def cuda_graph_blocker(model_path: str | Path) -> str | None:
    """Why a CUDA graph cannot be captured for this model, judged from the file; None when nothing
    in the file forbids it."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    ops = sorted({n.op_type for n in model.graph.node} & CONTROL_FLOW)
    if ops:
        return f"control flow ({', '.join(ops)}) cannot be captured in a CUDA graph"
    return None


class CudaIoSession:
    """One model on the CUDA provider with device-resident inputs and outputs (see the module docstring).

    ``run()`` runs the model on the bound device buffers and waits for it; ``outputs()`` copies the
    outputs to the host."""

    def __init__(self, model_path: str | Path, feeds: dict[str, np.ndarray], device_id: int = 0,
                 cuda_graph: bool = True) -> None:
        import onnxruntime as ort

        self.path, self.device_id = Path(model_path), device_id
        providers = cuda_providers(device_id)  # raises without onnxruntime-gpu, before loading anything
        self.note = ""
        if cuda_graph and (why := cuda_graph_blocker(model_path)):
            cuda_graph, self.note = False, why
        self.session = ort_session(model_path, cuda_providers(device_id, cuda_graph) if cuda_graph else providers)
        self.cuda_graph = cuda_graph
        self._inputs = {
            i.name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(feeds[i.name], feed_dtype(i.type)), "cuda",
                                                     device_id)
            for i in self.session.get_inputs()
        }
        bindings = {
            d: n for i in self.session.get_inputs() for d, n in zip(i.shape, feeds[i.name].shape) if isinstance(d, str)
        }
        self._outputs: dict[str, Any] = {}
        for o in self.session.get_outputs():
            shape = resolve_shape(list(o.shape), bindings)
            if shape is None:
                if self.cuda_graph:
                    self.note = f"output {o.name} has a shape unknown before running; CUDA graphs need it fixed"
                    self._reopen_without_graph(providers)
                self._outputs[o.name] = None  # bound by device type: ONNX Runtime allocates it
            else:
                self._outputs[o.name] = ort.OrtValue.ortvalue_from_shape_and_type(
                    shape, feed_dtype(o.type), "cuda", device_id)
        self._bind()
        try:
            self.run()  # a CUDA graph is captured here; ONNX Runtime refuses it if a node runs on the CPU
        except Exception as e:
            if not self.cuda_graph:
                raise
            self.note = f"CUDA graph capture refused ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            self._reopen_without_graph(providers)
            self._bind()
            self.run()

    def _reopen_without_graph(self, providers: list[Any]) -> None:
        self.session = ort_session(self.path, providers)
        self.cuda_graph = False

    def _bind(self) -> None:
        self.binding = self.session.io_binding()
        for name, value in self._inputs.items():
            self.binding.bind_ortvalue_input(name, value)
        for name, value in self._outputs.items():
            if value is None:
                self.binding.bind_output(name, "cuda", self.device_id)
            else:
                self.binding.bind_ortvalue_output(name, value)

    def run(self) -> None:
        self.session.run_with_iobinding(self.binding)
        self.binding.synchronize_outputs()

    def outputs(self) -> list[np.ndarray]:
        return list(self.binding.copy_outputs_to_cpu())
