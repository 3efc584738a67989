"""The machine's measured matrix-multiply peak, the yardstick for efficiency.

Efficiency is reported against what this machine sustains on a large dense matrix multiply,
measured in the same run with the same thread count as the sweep, not against a data sheet.

Measurement: every (engine, dtype, size) is warmed up, then timed in interleaved rounds (each
round runs every one of them for a short while, so a change in the machine's load hits all of
them alike). A round's rate is ``2 n^3`` over the median call time of that round; a measurement
is the median of its round rates, and its spread the coefficient of variation of the round rates.
The peak of a device and dtype is the best measurement over sizes and engines, reported with its
spread. Sizes of 512 and 1024 keep a call long enough (about a millisecond and more) that timer
and dispatch overheads do not count, and short enough that on a machine shared with other
processes many calls run within one scheduler time slice, uninterrupted (calls of 10 to 100 ms at
n = 2048 are always preempted somewhere). No choice of size helps when another process holds one
of the cores for the whole measurement: the rate then drops (by half on 2 cores), which is why
the load average is recorded beside the peak.

Engines: PyTorch ``torch.matmul`` and ONNX Runtime ``MatMul`` in fp32; on the CPU also ONNX
Runtime ``MatMulInteger`` (uint8 x int8 -> int32, the integer GEMM its quantized MatMuls run on)
as the int8 peak; on CUDA ``torch.matmul`` in fp32 (TF32 off), fp16 and bf16.

Thread counts: a cell timed on one thread is divided by the one-thread peak, a cell on two by the
two-thread peak (``threads = "auto"`` chooses per cell; docs/latency.md), so a cell's efficiency moves
only when its speed does, not when the thread trial picks another count. The CPU kernels are measured
at every count the sweep may use, in the same interleaved rounds.

The machine's pace (:mod:`.pace`): where the sweep watches it, each round waits out a slow phase
before it starts and a round that met one is timed again, within the sweep's budget, as the latency
cells' chunks are: a peak measured in a slow phase would inflate every efficiency of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .pace import Pace
from .stats import coefficient_of_variation, median

DEFAULT_SIZES = (512, 1024)
DEFAULT_ROUNDS = 5
ROUND_SECONDS = 0.1  # at least this long per (engine, dtype, size) and round, and at least 2 calls
WARMUP_SECONDS = 0.1


@dataclass(frozen=True)
class PeakMeasurement:
    engine: str  # "torch" or "onnxruntime"
    device: str  # "cpu" or "cuda"
    dtype: str  # "fp32", "fp16", "bf16", "int8"
    size: int  # n of an (n x n) @ (n x n) product
    gflops: float  # median of the round rates (GOP/s for int8)
    repeats: int  # timed calls in all
    rounds: int = 1
    spread: float | None = None  # coefficient of variation of the round rates
    threads: int | None = None  # CPU threads it ran on (None: the peak's own count; CUDA: not applicable)


@dataclass(frozen=True)
class PeakRef:
    """The peak a cell is divided by: which one (``cpu/fp32``), its rate and its spread."""

    label: str
    gflops: float
    spread: float | None


@dataclass
class MatmulPeak:
    threads: int
    measurements: list[PeakMeasurement] = field(default_factory=list)
    load: float | None = None  # 1-minute load average when it was measured

    def _threads(self, m: PeakMeasurement) -> int:
        return m.threads if m.threads is not None else self.threads

    def best(self, device: str, dtype: str = "fp32", threads: int | None = None) -> PeakMeasurement | None:
        """The best measurement of ``device``/``dtype`` at ``threads`` CPU threads (None: the peak's own
        count, what the sweep's cells without a thread trial run on)."""
        want = self.threads if threads is None else threads
        rows = [m for m in self.measurements if m.device == device and m.dtype == dtype
                and (device != "cpu" or self._threads(m) == want)]
        return max(rows, key=lambda m: m.gflops) if rows else None

    def for_cell(self, device: str, precision: str, threads: int | None = None) -> PeakRef | None:
        """The peak a cell on ``device`` in ``precision`` (on ``threads`` CPU threads) is measured
        against: the same dtype when it was measured (int8 on the CPU; fp16/bf16 on CUDA), else fp32
        (the label says which, and the thread count when it is not the peak's own)."""
        for dtype in (precision, "fp32"):
            m = self.best(device, dtype, threads)
            if m is not None:
                count = self._threads(m)
                suffix = f" ({count} thread{'s' if count > 1 else ''})" if device == "cpu" and count != self.threads else ""
                return PeakRef(f"{device}/{dtype}{suffix}", m.gflops, m.spread)
        return None

    def to_dict(self) -> dict[str, object]:
        peaks = {}
        for device, dtype, threads in sorted({(m.device, m.dtype, self._threads(m)) for m in self.measurements}):
            b = self.best(device, dtype, threads)
            assert b is not None
            key = f"{device}/{dtype}" + (f"@{threads}" if device == "cpu" and threads != self.threads else "")
            peaks[key] = {"gflops": b.gflops, "engine": b.engine, "size": b.size, "spread": b.spread, "threads": threads}
        return {
            "threads": self.threads,
            "peaks": peaks,
            "measurements": [asdict(m) for m in self.measurements],
            "load": self.load,
        }

    @classmethod
    def from_dict(cls, data: dict) -> MatmulPeak:
        return cls(int(data["threads"]), [PeakMeasurement(**m) for m in data.get("measurements", [])], data.get("load"))


@dataclass
class _Kernel:
    engine: str
    device: str
    dtype: str
    size: int
    step: Callable[[], None]
    threads: int | None = None
    rates: list[float] = field(default_factory=list)
    calls: int = 0

    def run(self, seconds: float, least: int) -> list[float]:
        times: list[float] = []
        t_end = time.perf_counter() + seconds
        while len(times) < least or time.perf_counter() < t_end:
            t0 = time.perf_counter()
            self.step()
            times.append(time.perf_counter() - t0)
        return times


def _torch_step(device: str, dtype: str, size: int) -> Callable[[], None]:
    import torch

    tdtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=gen).to(device=device, dtype=tdtype)
    b = torch.randn(size, size, generator=gen).to(device=device, dtype=tdtype)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        torch.matmul(a, b)
        sync()

    return step


def _ort_step(size: int, threads: int, dtype: str) -> Callable[[], None]:
    """ONNX Runtime on the CPU: ``MatMul`` (fp32) or ``MatMulInteger`` (int8) against a constant."""
    from onnx import TensorProto, helper, numpy_helper

    from ..backends import ort_session

    rng = np.random.default_rng(0)
    if dtype == "int8":
        weight = numpy_helper.from_array(rng.integers(-128, 128, (size, size), dtype=np.int8), "B")
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
        a = rng.integers(0, 256, (size, size), dtype=np.uint8)
    else:
        weight = numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type = y_type = TensorProto.FLOAT
        a = rng.standard_normal((size, size), dtype=np.float32)
    graph = helper.make_graph(
        [node], "matmul_peak", [helper.make_tensor_value_info("A", a_type, [size, size])],
        [helper.make_tensor_value_info("Y", y_type, [size, size])], [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = ort_session(model.SerializeToString(), ["CPUExecutionProvider"], threads)
    feed = {"A": a}

    def step() -> None:
        sess.run(None, feed)

    return step


def _cpu_steps(engine: str, n: int, threads: int) -> list[tuple[str, Callable[[], None]]]:
    """The CPU matrix multiplies an engine is measured with: PyTorch fp32; ONNX Runtime fp32 and int8."""
    steps: dict[str, Callable[[], list[tuple[str, Callable[[], None]]]]] = {
        "torch": lambda: [("fp32", _torch_step("cpu", "fp32", n))],
        "onnxruntime": lambda: [("fp32", _ort_step(n, threads, "fp32")), ("int8", _ort_step(n, threads, "int8"))],
    }
    return steps[engine]()


def measure_peak(
    threads: int,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    repeats: int = DEFAULT_ROUNDS,
    engines: tuple[str, ...] = ("torch", "onnxruntime"),
    cuda: bool | None = None,
    round_seconds: float = ROUND_SECONDS,
    thread_counts: tuple[int, ...] = (),
    pace: Pace | None = None,
    say: Callable[[str], None] | None = None,
) -> MatmulPeak:
    """Measure the dense matrix-multiply peak with ``threads`` CPU threads (and each of
    ``thread_counts`` besides; and on CUDA when present) in ``repeats`` interleaved rounds, watching
    the machine's ``pace`` when given (see the module docstring)."""
    import torch

    if cuda is None:
        cuda = torch.cuda.is_available()
    previous = torch.get_num_threads()
    allow = torch.backends.cuda.matmul.allow_tf32
    counts = tuple(dict.fromkeys((threads, *thread_counts)))
    kernels: list[_Kernel] = []
    tell = say or (lambda _t: None)
    try:
        for t in counts:
            for n in sizes:
                for engine in engines:  # each engine's CPU kernels: (dtype, step) per size and thread count
                    for dtype, step in _cpu_steps(engine, n, t):
                        kernels.append(_Kernel(engine, "cpu", dtype, n, step, t))
        if cuda:
            torch.backends.cuda.matmul.allow_tf32 = False
            for dtype in ("fp32", "fp16", "bf16"):
                for n in (*sizes, 4096, 8192):
                    kernels.append(_Kernel("torch", "cuda", dtype, n, _torch_step("cuda", dtype, n)))

        def timed(k: _Kernel, seconds: float) -> list[float]:
            torch.set_num_threads(k.threads or threads)  # torch's count is per process; ONNX Runtime's per session
            return k.run(seconds, 2)

        for k in kernels:  # allocations, weight packing, thread pools, clocks
            timed(k, WARMUP_SECONDS)
        done = 0
        while done < max(1, repeats):
            if pace is not None:
                pace.settle(tell, f"peak round {done + 1}")
            t0 = time.perf_counter()
            rates = []
            for k in kernels:
                times = timed(k, round_seconds)
                rates.append((k, len(times), 2.0 * k.size**3 / median(times) / 1e9))
            if pace is not None and pace.pace() > pace.threshold and pace.left() > 0:
                pace.discard(time.perf_counter() - t0)  # the round met a slow phase: timed again
                continue
            for k, calls, rate in rates:
                k.calls += calls
                k.rates.append(rate)
            done += 1
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow
        torch.set_num_threads(previous)
    from .machine import load_average

    return MatmulPeak(threads, [
        PeakMeasurement(k.engine, k.device, k.dtype, k.size, median(k.rates), k.calls, len(k.rates),
                        coefficient_of_variation(k.rates), k.threads)
        for k in kernels
    ], load_average())
