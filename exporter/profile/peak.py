"""The machine's measured matrix-multiply peak, the yardstick for efficiency (DESIGN section 8).

Efficiency is reported against what this machine actually sustains on a large dense matrix
multiply, measured in the same run with the same thread count as the sweep, not against a data
sheet. For each engine (PyTorch ``torch.matmul``, ONNX Runtime ``MatMul``) and each square size the
median of several timed repeats is taken; the peak of a device and dtype is the best of those
medians over sizes and engines. On CUDA the fp32 peak is measured with TF32 disabled, plus fp16
and bf16 peaks for the half-precision cells.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from .stats import median

DEFAULT_SIZES = (512, 1024, 2048)


@dataclass(frozen=True)
class PeakMeasurement:
    engine: str  # "torch" or "onnxruntime"
    device: str  # "cpu" or "cuda"
    dtype: str  # "fp32", "fp16", "bf16"
    size: int  # n of an (n x n) @ (n x n) product
    gflops: float  # median over the repeats
    repeats: int


@dataclass
class MatmulPeak:
    threads: int
    measurements: list[PeakMeasurement] = field(default_factory=list)

    def best(self, device: str, dtype: str = "fp32") -> PeakMeasurement | None:
        rows = [m for m in self.measurements if m.device == device and m.dtype == dtype]
        return max(rows, key=lambda m: m.gflops) if rows else None

    def for_cell(self, device: str, precision: str) -> tuple[str, float] | None:
        """The peak a cell on ``device`` in ``precision`` is measured against: the same dtype
        when it was measured (fp16/bf16 on CUDA), else fp32. Returns (label, GFLOP/s)."""
        for dtype in (precision, "fp32"):
            m = self.best(device, dtype)
            if m is not None:
                return f"{device}/{dtype}", m.gflops
        return None

    def to_dict(self) -> dict[str, object]:
        peaks = {}
        for key in sorted({(m.device, m.dtype) for m in self.measurements}):
            b = self.best(*key)
            assert b is not None
            peaks[f"{key[0]}/{key[1]}"] = {"gflops": b.gflops, "engine": b.engine, "size": b.size}
        return {
            "threads": self.threads,
            "peaks": peaks,
            "measurements": [asdict(m) for m in self.measurements],
        }

    @classmethod
    def from_dict(cls, data: dict) -> MatmulPeak:
        return cls(int(data["threads"]), [PeakMeasurement(**m) for m in data.get("measurements", [])])


def _time_repeats(fn, repeats: int) -> list[float]:
    fn()  # warm-up: allocations, packing, thread pool start
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _torch_peak(device: str, dtype: str, size: int, repeats: int) -> float:
    import torch

    tdtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=tdtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=tdtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        torch.matmul(a, b)
        sync()

    times = _time_repeats(step, repeats)
    return 2.0 * size**3 / median(times) / 1e9


def _ort_peak(size: int, repeats: int, threads: int) -> float:
    from onnx import TensorProto, helper, numpy_helper

    from ..runners import ort_session

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["A", "B"], ["Y"])],
        "matmul_peak",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [size, size])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [size, size])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort_session(model.SerializeToString(), ["CPUExecutionProvider"], threads)
    a = rng.standard_normal((size, size), dtype=np.float32)
    times = _time_repeats(lambda: sess.run(None, {"A": a}), repeats)
    return 2.0 * size**3 / median(times) / 1e9


def measure_peak(
    threads: int,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    repeats: int = 5,
    engines: tuple[str, ...] = ("torch", "onnxruntime"),
    cuda: bool | None = None,
) -> MatmulPeak:
    """Measure the dense matrix-multiply peak with ``threads`` CPU threads (and on CUDA when present)."""
    import torch

    if cuda is None:
        cuda = torch.cuda.is_available()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    result = MatmulPeak(threads)
    try:
        for n in sizes:
            if "torch" in engines:
                result.measurements.append(PeakMeasurement("torch", "cpu", "fp32", n, _torch_peak("cpu", "fp32", n, repeats), repeats))
            if "onnxruntime" in engines:
                result.measurements.append(PeakMeasurement("onnxruntime", "cpu", "fp32", n, _ort_peak(n, repeats, threads), repeats))
        if cuda:
            allow = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = False
            try:
                for dtype in ("fp32", "fp16", "bf16"):
                    for n in (*sizes, 4096, 8192):
                        g = _torch_peak("cuda", dtype, n, repeats)
                        result.measurements.append(PeakMeasurement("torch", "cuda", dtype, n, g, repeats))
            finally:
                torch.backends.cuda.matmul.allow_tf32 = allow
    finally:
        torch.set_num_threads(previous)
    return result
