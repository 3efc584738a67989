"""numpy reference of the plugin pair (the math of ``plugins``' docstring), with the softmax in
fp32 (fp64 for fp64 inputs) whatever the input dtype, and ``shared`` returned in the input dtype.

``register_polygraphy()`` registers both ops with Polygraphy's plugin reference runner
(``polygraphy.backend.pluginref.references.register(op)``: a function ``f(attrs, *inputs) -> list
of outputs`` keyed by op type), so ``polygraphy run MODEL.onnx --pluginref`` can check a graph made
of these nodes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from . import GATHER, SCATTER


def _compute_dtype(dtype: np.dtype) -> type:
    return np.float64 if dtype == np.float64 else np.float32


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def lookup_gather(q_z: np.ndarray, k_x: np.ndarray, v_x: np.ndarray, scale: float,
                  share_probs: bool) -> tuple[np.ndarray, np.ndarray]:
    """q_z (B,H,M,d), k_x/v_x (B,H,N,d) -> out_z (B,H,M,d), shared (B,H,M,N)."""
    c = _compute_dtype(q_z.dtype)
    s = (q_z.astype(c) @ np.swapaxes(k_x.astype(c), -1, -2)) * c(scale)  # (B, H, M, N)
    p = softmax(s, -1)  # over the N lookup tokens
    out_z = p @ v_x.astype(c)  # (B, H, M, d)
    shared = p if share_probs else s
    return out_z.astype(q_z.dtype), shared.astype(q_z.dtype)


def lookup_scatter(shared: np.ndarray, v_z: np.ndarray, share_probs: bool) -> np.ndarray:
    """shared (B,H,M,N), v_z (B,H,M,d) -> out_x (B,H,N,d)."""
    c = _compute_dtype(v_z.dtype)
    x = np.swapaxes(shared.astype(c), -1, -2)  # (B, H, N, M)
    w = x if share_probs else softmax(x, -1)  # over the M compressed tokens
    return (w @ v_z.astype(c)).astype(v_z.dtype)


def _attrs(attrs: Mapping[str, Any]) -> tuple[float, bool]:
    return float(attrs["scale"]), bool(int(attrs.get("share_probs", 0)))


def register_polygraphy() -> None:
    """Register both ops with Polygraphy's plugin reference runner (idempotent)."""
    from polygraphy.backend.pluginref.references import register

    @register(GATHER)
    def run_gather(attrs, q_z, k_x, v_x):
        scale, share_probs = _attrs(attrs)
        return list(lookup_gather(q_z, k_x, v_x, scale, share_probs))

    @register(SCATTER)
    def run_scatter(attrs, shared, v_z):
        return [lookup_scatter(shared, v_z, _attrs(attrs)[1])]


__all__ = ["lookup_gather", "lookup_scatter", "register_polygraphy", "softmax"]
