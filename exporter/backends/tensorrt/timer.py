"""TensorRT as a timed backend: a built engine through Polygraphy's runner, its own inference time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base import Timer, Unsupported, first_line, random_batch


def trt_timer(engine_path: str | Path, batch: int, input_shape: tuple[int, ...]) -> Timer:
    """A TensorRT engine through Polygraphy's runner; the time is the runner's own inference time."""
    from ...engine.trt import trt_runner
    from ...errors import UserError

    try:
        runner = trt_runner(engine_path)
        runner.activate()
    except UserError as e:
        raise Unsupported(e.message) from None
    except Exception as e:
        raise Unsupported(f"TensorRT cannot load {Path(engine_path).name}: {first_line(e)}") from None
    meta = runner.get_input_metadata()
    name = next(iter(meta.keys()))
    feed: dict[str, Any] = {name: random_batch(batch, input_shape)}
    try:
        import torch

        if torch.cuda.is_available():  # device-resident input: time the engine, not the upload
            feed = {name: torch.from_numpy(feed[name]).cuda()}
    except ImportError:
        pass

    def call() -> float:
        runner.infer(feed, copy_outputs_to_host=False)
        return float(runner.last_inference_time())

    try:
        call()
    except Exception as e:
        runner.deactivate()
        raise Unsupported(f"TensorRT fails running {Path(engine_path).name} at batch {batch}: {first_line(e)}") from None
    return Timer("trt", "cuda", Path(engine_path).name, call, runner.deactivate)
