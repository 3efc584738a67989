"""Selecting and importing TensorRT or TensorRT-RTX, for Polygraphy and for this project's code.

Polygraphy selects TensorRT-RTX instead of TensorRT when ``POLYGRAPHY_USE_TENSORRT_RTX`` is set:
``polygraphy.config.USE_TENSORRT_RTX`` is read from it when ``polygraphy`` is first imported, and each
``polygraphy.backend.trt`` module binds ``tensorrt`` or ``tensorrt_rtx`` when it is imported.
:func:`load_tensorrt` therefore sets the switch before importing ``polygraphy.backend.trt``, and refuses
to switch once that import happened in this process. ``trt`` stands for the chosen module until then.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ...errors import UserError
from .env import RTX_SWITCH, TENSORRT_MODULES

if TYPE_CHECKING:  # type-checked against tensorrt-stubs; bound at run time by load_tensorrt()
    import tensorrt as trt
else:

    class _LazyTensorRT:
        """Stands for the ``tensorrt`` or ``tensorrt_rtx`` module chosen by :func:`load_tensorrt`."""

        module: ModuleType | None = None

        def __getattr__(self, name: str) -> Any:
            if self.module is None:
                raise RuntimeError("TensorRT is used before load_tensorrt() selected it")
            return getattr(self.module, name)

    trt = _LazyTensorRT()


def load_tensorrt(backend: str) -> ModuleType:
    """Select ``tensorrt`` or ``tensorrt_rtx`` for Polygraphy and this module, and import it."""
    import polygraphy.config as polygraphy_config

    want_rtx = backend == "tensorrt-rtx"
    if "polygraphy.backend.trt" in sys.modules and bool(polygraphy_config.USE_TENSORRT_RTX) != want_rtx:
        current = "TensorRT-RTX" if polygraphy_config.USE_TENSORRT_RTX else "TensorRT"
        raise UserError(
            f"Polygraphy's TensorRT backend was already loaded for {current} in this process.",
            f"Run this in a fresh process, with {RTX_SWITCH}={'1' if want_rtx else '0'} set from the start.",
        )
    os.environ[RTX_SWITCH] = "1" if want_rtx else "0"
    polygraphy_config.USE_TENSORRT_RTX = want_rtx
    module = importlib.import_module(TENSORRT_MODULES[backend])
    if not TYPE_CHECKING:
        trt.module = module
    return module
