"""OpenVINO as a timed backend on the CPU plugin, the batch fixed at compile time, f32 inference
precision (an int8 graph's Q/DQ pairs still run as int8), with the latency or throughput hint and the
thread count asked for (see runner.py for the properties and the documentation they come from).

With the ``latency`` hint a call is one synchronous ``InferRequest.infer``: its time is the latency
of one batch. The ``throughput`` hint makes the plugin run several streams, which only pays with as
many requests in flight (OpenVINO's ``OPTIMAL_NUMBER_OF_INFER_REQUESTS``), so a call starts that many
requests on an ``AsyncInferQueue``, waits for all, and counts the time divided by their number: the
time per batch at full occupancy (the inverse of the throughput), not the latency of one request,
which the timer's detail says.

A dynamic-grid model is compiled once per timer and run at one grid (its grid input in the fixed
feed): OpenVINO 2026.4's CPU plugin returned wrong logits when one infer request was fed a grid
after another of a different shape (lookupvit_digits, 4x4 after 1x1 and 2x2), while a freshly
compiled model matched ONNX Runtime at every grid."""

from __future__ import annotations

import time
from pathlib import Path

from ..base import Timer, Unsupported, first_line, random_batch
from .runner import compile_onnx, openvino_missing


def ov_timer(path: str | Path, batch: int, input_shape: tuple[int, ...], threads: int, hint: str = "latency",
             grid: tuple[int, ...] | None = None) -> Timer:
    missing = openvino_missing()
    if missing:
        raise Unsupported(missing)
    from ...errors import UserError
    from ...export.grid_input import grid_feed

    try:
        extra = grid_feed(path, grid) if grid is not None else {}  # a dynamic-grid model's grid input; {} when the grid is fixed
    except UserError as e:
        raise Unsupported(e.message) from None

    try:
        compiled = compile_onnx(path, threads, hint, batch=batch)
    except UserError as e:
        raise Unsupported(e.message) from None
    except Exception as e:
        raise Unsupported(f"OpenVINO cannot compile {Path(path).name}: {first_line(e)}") from None
    feed = {compiled.inputs[0].get_any_name(): random_batch(batch, input_shape), **extra}
    import openvino as ov

    if hint == "throughput":
        jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        queue = ov.AsyncInferQueue(compiled, jobs)
        what = f"throughput hint, {jobs} requests in flight, time per batch amortised"

        def call() -> float:
            t0 = time.perf_counter()
            for _ in range(jobs):
                queue.start_async(feed)
            queue.wait_all()
            return (time.perf_counter() - t0) / jobs
    else:
        request = compiled.create_infer_request()
        what = f"{hint} hint"

        def call() -> float:
            t0 = time.perf_counter()
            request.infer(feed)
            return time.perf_counter() - t0

    try:
        call()
    except Exception as e:
        raise Unsupported(f"OpenVINO fails running {Path(path).name} at batch {batch}: {first_line(e)}") from None
    return Timer("openvino", "cpu", f"OpenVINO {ov.__version__} CPU, {what}, f32 inference precision", call)
