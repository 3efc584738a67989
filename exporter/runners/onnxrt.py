"""ONNX Runtime as a Polygraphy runner: the CPU execution provider, or CUDA where installed."""

from __future__ import annotations

from pathlib import Path


def ort_providers(prefer_cuda: bool = True) -> list[str]:
    """Execution providers to use here: CUDA first when ONNX Runtime has it, then CPU."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if prefer_cuda and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def ort_runner(path: str | Path, providers: list[str] | None = None, threads: int | None = None, name: str | None = None):
    """A Polygraphy ``OnnxrtRunner`` over ``path``."""
    import onnxruntime as ort
    from polygraphy.backend.onnxrt import OnnxrtRunner

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3

    def make_session():
        return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ort_providers())

    return OnnxrtRunner(make_session, name=name)
