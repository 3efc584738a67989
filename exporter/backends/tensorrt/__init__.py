"""TensorRT backend: what this machine offers (:mod:`.env`), loading TensorRT or TensorRT-RTX through
Polygraphy (:mod:`.loader`), the plugin library (:mod:`.plugin`), the engine's sidecar (:mod:`.sidecar`)
and its optimisation profiles (:mod:`.profiles`), the runner (:mod:`.runner`) and the timer
(:mod:`.timer`). Engines are built by :mod:`exporter.engine`, which uses this package. Nothing here
imports TensorRT until it is used."""

from .timer import trt_timer

__all__ = ["trt_timer"]
