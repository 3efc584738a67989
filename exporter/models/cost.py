"""Analytic cost model: parameter count and multiply-accumulates (MACs) per image.

Per LookupViT layer, with N lookup tokens, M compressed tokens, width D and MLP hidden widths
``hl = rl D`` (lookup) and ``hc = rc D`` (compressed):

    lookup tokens      3 N D^2 + 2 N D hl     (Wk, Wvx, Ox; MLP_rl)
    compressed tokens  7 M D^2 + 2 M D hc     (Wq, Oz, MHSA QKV + out, Wvz; MLP_rc)
    attention          3 N M D + 2 M^2 D      (logits, gather, scatter; MHSA)

which with rc = 4 is ``(3 + 2 rl) N D^2 + (7 + 2 rc) M D^2 + 3 N M D + 2 M^2 D``.
A ViT layer over S = N + 1 tokens is ``4 S D^2 + 2 S D h + 2 S^2 D`` (``12 S D^2 + 2 S^2 D`` for
h = 4D). Patch embedding and the classifier are added; LayerNorm, softmax, GELU and the grid resize
are not counted (they are not multiply-accumulates, and torch's FLOP counter skips them too).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .config import Grid, LookupViTConfig, ModelConfig, ViTConfig, check_grid


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int  # per sample
    breakdown: dict[str, int] = field(default_factory=dict)  # MACs per part

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "gmacs": self.gmacs}


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _mlp_params(d: int, hidden: int) -> int:
    return _linear(d, hidden) + _linear(hidden, d)


def _attn_params(d: int) -> int:
    return _linear(d, 3 * d) + _linear(d, d)


def model_cost(config: ModelConfig, grid: Grid | None = None) -> Cost:
    """Parameters and per-sample MACs of ``config`` at compressed ``grid`` (ignored for a ViT)."""
    if isinstance(config, ViTConfig):
        return _vit_cost(config)
    return _lookupvit_cost(config, grid if grid is not None else config.lookup_grid)


def _lookupvit_cost(c: LookupViTConfig, grid: Grid) -> Cost:
    grid = check_grid(tuple(grid), c.lookup_grid)
    d, n, m = c.dim, c.num_lookup_tokens, math.prod(grid)
    hl, hc = c.mlp_hidden(c.mlp_ratio_lookup), c.mlp_hidden(c.mlp_ratio_compressed)
    patch_in = c.in_chans * c.patch_size**2 * (c.tubelet if c.is_video else 1)
    pooled = 2 * d if c.pool == "both" else d

    layer_params = (
        6 * 2 * d  # six LayerNorms
        + 6 * _linear(d, d)  # Wq, Wk, Wvx, Oz, Wvz, Ox
        + _attn_params(d)
        + _mlp_params(d, hc)
        + _mlp_params(d, hl)
    )
    params = (
        _linear(patch_in, d)
        + n * d  # position embedding on the lookup grid
        + c.depth * layer_params
        + 2 * 2 * d  # final LayerNorms of both streams
        + (_linear(pooled, c.num_classes) if c.num_classes > 0 else 0)
    )
    breakdown = {
        "patch_embed": n * patch_in * d,
        "lookup": c.depth * (3 * n * d * d + 2 * n * d * hl),
        "compressed": c.depth * (7 * m * d * d + 2 * m * d * hc),
        "attention": c.depth * (3 * n * m * d + 2 * m * m * d),
        "head": pooled * c.num_classes if c.num_classes > 0 and c.head == "logits" else 0,
    }
    return Cost(params, sum(breakdown.values()), breakdown)


def _vit_cost(c: ViTConfig) -> Cost:
    d, n = c.dim, c.num_lookup_tokens
    s = n + 1  # with the class token
    h = c.mlp_hidden(c.mlp_ratio)
    patch_in = c.in_chans * c.patch_size**2
    layer_params = 2 * 2 * d + _attn_params(d) + _mlp_params(d, h)
    params = _linear(patch_in, d) + d + s * d + c.depth * layer_params + 2 * d
    params += _linear(d, c.num_classes)
    breakdown = {
        "patch_embed": n * patch_in * d,
        "tokens": c.depth * (4 * s * d * d + 2 * s * d * h),
        "attention": c.depth * 2 * s * s * d,
        "head": d * c.num_classes,
    }
    return Cost(params, sum(breakdown.values()), breakdown)
