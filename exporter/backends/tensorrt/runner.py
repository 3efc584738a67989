"""A Polygraphy ``TrtRunner`` over a built engine (for ``validate``, ``compare`` and the timer), selecting
the engine's optimisation profile per feed.

An engine with several optimisation profiles runs the one its execution context has selected
(TensorRT's ``IExecutionContext.set_optimization_profile_async``; Polygraphy's ``TrtRunner`` takes
``optimization_profile=`` at activation and ``set_profile(index)`` after). The runner selects, before
each inference, the profile the engine's sidecar lists for the feed's batch and grid
(:class:`.profiles.ProfileSelector`), so a dynamic-grid engine runs each grid with its own profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import UserError
from ...schema.sidecars import read_engine_sidecar
from .env import require_build_environment
from .loader import load_tensorrt
from .profiles import ProfileSelector
from .sidecar import sidecar_path


def trt_runner(engine_path: str | Path, name: str | None = None) -> Any:
    """A Polygraphy ``TrtRunner`` over a built engine, for comparisons (``Comparator.run``) and timing.

    The TensorRT flavour is the one recorded in the engine's sidecar (else full TensorRT, falling
    back to TensorRT-RTX). The engine is deserialized when the runner is activated. Before each
    inference the runner selects the optimisation profile the sidecar lists for the feed's batch (and,
    for a dynamic-grid engine, the shape of its grid input), switching only when it changes.
    """
    path = Path(engine_path)
    if not path.is_file():
        raise UserError(
            f"Engine {path} does not exist.",
            "Build it first: lookupvit build MODEL.onnx --profile NAME (engines land in DIR/engines/<profile>/).",
        )
    side = read_engine_sidecar(sidecar_path(path))
    recorded = side.tensorrt if side is not None else None
    backend = recorded.backend if recorded is not None else "tensorrt"
    choice, _ = require_build_environment(backend, action="run a TensorRT engine", exact=recorded is not None)
    load_tensorrt(choice.backend)
    if side is not None and side.plugin:
        from .plugin import register_if_available

        register_if_available()  # the engine carries the plugin's compiled kernels; registering does no harm
    from polygraphy.backend.trt import EngineFromPath, TrtRunner

    selector = ProfileSelector.from_sidecar(side, path.name)

    class ProfileSelectingRunner(TrtRunner):  # type: ignore[misc, valid-type]
        """Polygraphy's runner, its optimisation profile selected per feed (see trt_runner)."""

        active_profile: int | None = None

        def infer(self, feed_dict: Any, *args: Any, **kwargs: Any) -> Any:
            index = selector.for_feed(feed_dict)
            if index is not None and index != self.active_profile:
                self.set_profile(index)
                self.active_profile = index
            return super().infer(feed_dict, *args, **kwargs)

        def deactivate_impl(self) -> None:
            self.active_profile = None
            super().deactivate_impl()

    return ProfileSelectingRunner(EngineFromPath(str(path)), name=name or path.name)
