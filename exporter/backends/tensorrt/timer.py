"""TensorRT as a timed backend: a built engine through Polygraphy's runner, its own inference time.

A dynamic-grid engine (docs/dynamic-grid.md) is timed at one grid per timer: the grid input
of that shape is fed next to the images, and the runner selects the optimisation profile the
engine's sidecar lists for that batch and grid (``plan.profile_index``; exporter/engine/plan.py,
:class:`~.profiles.ProfileSelector`) before the first, untimed call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..base import Timer, Unsupported, first_line, random_batch


def trt_timer(engine_path: str | Path, batch: int, input_shape: tuple[int, ...],
              grid: tuple[int, ...] | None = None) -> Timer:
    """A TensorRT engine through Polygraphy's runner; the time is the runner's own inference time.
    ``grid``: the grid a dynamic-grid engine runs at (ignored by a one-grid engine)."""
    from ...errors import UserError
    from ...schema.sidecars import read_engine_sidecar
    from .profiles import ProfileSelector
    from .runner import trt_runner
    from .sidecar import sidecar_path

    path = Path(engine_path)
    try:
        selector = ProfileSelector.from_sidecar(read_engine_sidecar(sidecar_path(path)), path.name)
        profile = selector.index(batch, grid if selector.grid_input else None)  # refuses a grid not served
        runner = trt_runner(path)
        runner.activate()
    except UserError as e:
        raise Unsupported(e.message) from None
    except Exception as e:
        raise Unsupported(f"TensorRT cannot load {path.name}: {first_line(e)}") from None
    meta = runner.get_input_metadata()
    name = next(k for k in meta if k != selector.grid_input)
    feed: dict[str, Any] = {name: random_batch(batch, input_shape)}
    if selector.grid_input is not None:
        if grid is None:
            runner.deactivate()
            raise Unsupported(f"{path.name} is a dynamic-grid engine; a grid must be chosen")
        import numpy as np

        from ...export.grid_input import GRID_INPUT_DTYPE

        feed[selector.grid_input] = np.zeros(grid, dtype=GRID_INPUT_DTYPE)
    try:
        import torch

        if torch.cuda.is_available():  # device-resident inputs: time the engine, not the upload
            feed = {k: torch.from_numpy(v).cuda() for k, v in feed.items()}
    except ImportError:
        pass

    def call() -> float:
        runner.infer(feed, copy_outputs_to_host=False)
        return float(runner.last_inference_time())

    try:
        call()  # selects the optimisation profile (untimed)
    except Exception as e:
        runner.deactivate()
        raise Unsupported(f"TensorRT fails running {path.name} at batch {batch}: {first_line(e)}") from None
    detail = path.name + (f", profile {profile}" if profile is not None else "")
    return Timer("trt", "cuda", detail, call, runner.deactivate)
