"""ONNX Runtime sessions and the Polygraphy runner over them: the CPU execution provider, or CUDA
where installed. Every ONNX Runtime session of the project is made here."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def ort_providers(prefer_cuda: bool = True) -> list[str]:
    """Execution providers to use here: CUDA first when ONNX Runtime has it, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if prefer_cuda and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def ort_session(
    model: str | Path | bytes, providers: list[Any] | None = None, threads: int | None = None, level: Any = None
):
    """An ``InferenceSession`` over a model path (or serialised bytes), quiet, with ``threads``
    intra-op threads (one inter-op thread) and graph optimisation ``level`` when given. A provider is
    a name or a ``(name, options)`` pair (see :mod:`.ort_cuda` for the CUDA provider's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if level is not None:
        opts.graph_optimization_level = level
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=providers or ort_providers())


def ort_runner(
    path: str | Path, providers: list[str] | None = None, threads: int | None = None, name: str | None = None,
    level: Any = None,
):
    """A Polygraphy ``OnnxrtRunner`` over ``path``."""
    from polygraphy.backend.onnxrt import OnnxrtRunner

    return OnnxrtRunner(lambda: ort_session(path, providers, threads, level), name=name)
