"""TensorRT: engines are built by :mod:`exporter.engine` (the only module that imports TensorRT at
build time); this backend runs and times them. Nothing here imports TensorRT until it is used."""

from .timer import trt_timer

__all__ = ["trt_timer"]
