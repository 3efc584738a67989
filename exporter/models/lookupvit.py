"""LookupViT (Koner et al., "LookupViT: Compressing visual information to a limited number of
tokens", arXiv 2407.12753, ECCV 2024): image, video and feature-head families.

Per layer, with x the N lookup tokens, z the M compressed tokens, H heads of width d = D/H:

    S  = (LN(z) Wq)(LN(x) Wk)^T / sqrt(d)          # (B, H, M, N) logits, computed once
    z += Oz( softmax_N(S) . LN(x) Wvx )             # gather: compressed attend to lookup
    z += MHSA(LN(z));  z += MLP_rc(LN(z))           # full processing of the few compressed tokens
    x += Ox( softmax_M(S^T) . LN(z) Wvz )           # scatter: lookup attend to compressed
    x += MLP_rl(LN(x))                              # cheap MLP on the many lookup tokens

The compressed tokens are a bilinear (video: trilinear) resize of the embedded lookup grid to the
compressed grid, which is chosen at call time: no parameter depends on it.

The grid is given either as sizes ``(gh, gw)`` / ``(gt, gh, gw)`` or as a tensor whose SHAPE is the
grid (its values are never read). The second form is what a dynamic-grid ONNX export traces: the
resize size comes from an input's shape, which ``torch.export`` keeps symbolic (a bounded ``Dim``
per axis) and ONNX writes as ``Shape -> Resize(sizes)``; a static export is the same code path with
the sizes fixed (docs/dynamic-grid.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import Grid, LookupViTConfig, check_grid
from .layers import Block, Mlp, PatchEmbed, merge_heads, split_heads
from .registry import register_variant

GridArg = Grid | torch.Tensor
"""Sizes ``(gh, gw)`` / ``(gt, gh, gw)``, or a tensor of that shape whose values are unused."""


def grid_sizes(grid: GridArg, lookup_grid: Grid) -> Grid:
    """The compressed grid's sizes; concrete sizes are checked against the lookup grid. Under
    ``torch.export`` a grid tensor's sizes are symbolic: their bounds are the export's ``Dim``s."""
    sizes = tuple(grid.shape) if isinstance(grid, torch.Tensor) else tuple(grid)
    if all(isinstance(s, int) for s in sizes):
        return check_grid(sizes, lookup_grid)
    if len(sizes) != len(lookup_grid):
        raise ValueError(f"a grid tensor for this model has {len(lookup_grid)} dimensions, got {len(sizes)}")
    return sizes


class LookupBlock(nn.Module):
    """One LookupViT layer (the five lines of the module docstring)."""

    def __init__(self, cfg: LookupViTConfig):
        super().__init__()
        d, eps = cfg.dim, cfg.ln_eps
        self.heads = cfg.heads
        self.scale = 1.0 / math.sqrt(d // cfg.heads)
        self.scatter_mode = cfg.scatter
        # gather: compressed queries, lookup keys/values
        self.norm_zq = nn.LayerNorm(d, eps=eps)
        self.norm_x = nn.LayerNorm(d, eps=eps)
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v_x = nn.Linear(d, d)
        self.out_z = nn.Linear(d, d)
        # full processing of the compressed tokens: MHSA + MLP_rc
        self.compressed = Block(d, cfg.heads, cfg.mlp_hidden(cfg.mlp_ratio_compressed), eps)
        # scatter: lookup tokens attend to the processed compressed tokens
        self.norm_zv = nn.LayerNorm(d, eps=eps)
        self.v_z = nn.Linear(d, d)
        self.out_x = nn.Linear(d, d)
        # cheap MLP on the lookup tokens
        self.norm_x_mlp = nn.LayerNorm(d, eps=eps)
        self.mlp_x = Mlp(d, cfg.mlp_hidden(cfg.mlp_ratio_lookup))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # x: (B, N, D) lookup tokens;  z: (B, M, D) compressed tokens
        xn = self.norm_x(x)
        q = split_heads(self.q(self.norm_zq(z)), self.heads)  # (B, H, M, d)
        k = split_heads(self.k(xn), self.heads)  # (B, H, N, d)
        v_x = split_heads(self.v_x(xn), self.heads)  # (B, H, N, d)
        logits = torch.matmul(q, k.transpose(-2, -1)) * self.scale  # (B, H, M, N)
        gather = torch.softmax(logits, dim=-1)  # over the N lookup tokens
        z = z + self.out_z(merge_heads(torch.matmul(gather, v_x)))  # (B, M, D)

        z = self.compressed(z)  # (B, M, D)

        v_z = split_heads(self.v_z(self.norm_zv(z)), self.heads)  # (B, H, M, d)
        if self.scatter_mode == "logits":
            scatter = torch.softmax(logits.transpose(-2, -1), dim=-1)  # (B, H, N, M) over M
        else:
            scatter = gather.transpose(-2, -1)  # (B, H, N, M), gather's weights reused
        x = x + self.out_x(merge_heads(torch.matmul(scatter, v_z)))  # (B, N, D)
        x = x + self.mlp_x(self.norm_x_mlp(x))
        return x, z


class LookupViT(nn.Module):
    """LookupViT for images (B, C, H, W) or video (B, C, T, H, W).

    ``forward`` returns class logits (B, classes), or with ``head="features"`` the normalised
    token streams ``(lookup (B, N, D), compressed (B, M, D))``.
    """

    def __init__(self, cfg: LookupViTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.patch_embed = PatchEmbed(
            cfg.in_chans, d, cfg.patch_size, cfg.tubelet if cfg.is_video else None
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_lookup_tokens, d))
        self.blocks = nn.ModuleList(LookupBlock(cfg) for _ in range(cfg.depth))
        self.norm_x = nn.LayerNorm(d, eps=cfg.ln_eps)
        self.norm_z = nn.LayerNorm(d, eps=cfg.ln_eps)
        pooled = 2 * d if cfg.pool == "both" else d
        self.head = nn.Linear(pooled, cfg.num_classes) if cfg.num_classes > 0 else None
        self.grid: Grid = cfg.default_grids[-1] if cfg.default_grids else cfg.lookup_grid
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def set_grid(self, grid: Grid) -> LookupViT:
        """Choose the compressed grid used by later calls (parameters are untouched)."""
        self.grid = check_grid(tuple(grid), self.cfg.lookup_grid)
        return self

    def compress(self, x: torch.Tensor, grid: Grid) -> torch.Tensor:
        """Resize the lookup token grid to the compressed grid: (B, N, D) -> (B, M, D)."""
        b, _, d = x.shape
        volume = x.transpose(1, 2).reshape(b, d, *self.cfg.lookup_grid)  # (B, D, [T',] H', W')
        mode = "trilinear" if len(grid) == 3 else "bilinear"
        small = F.interpolate(
            volume, size=grid, mode=mode, align_corners=False, antialias=self.cfg.antialias
        )  # (B, D, [gt,] gh, gw)
        return small.flatten(2).transpose(1, 2)  # (B, M, D)

    def forward_features(
        self, images: torch.Tensor, grid: GridArg | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, [T,] H, W) -> normalised (lookup (B, N, D), compressed (B, M, D)).

        ``grid``: sizes, or a tensor whose shape is the grid (values unused); None: ``self.grid``.
        """
        grid = self.grid if grid is None else grid_sizes(grid, self.cfg.lookup_grid)
        x = self.patch_embed(images) + self.pos_embed  # (B, N, D)
        z = self.compress(x, grid)  # (B, M, D)
        for block in self.blocks:
            x, z = block(x, z)
        return self.norm_x(x), self.norm_z(z)

    def forward(
        self, images: torch.Tensor, grid: GridArg | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        x, z = self.forward_features(images, grid)
        if self.cfg.head == "features" or self.head is None:
            return x, z
        if self.cfg.pool == "compressed":
            pooled = z.mean(dim=1)  # (B, D)
        elif self.cfg.pool == "lookup":
            pooled = x.mean(dim=1)  # (B, D)
        else:
            pooled = torch.cat([z.mean(dim=1), x.mean(dim=1)], dim=-1)  # (B, 2D)
        return self.head(pooled)  # (B, classes)


# ---------------------------------------------------------------- variants: image classification
# Widths follow ViT Ti/S/B/L (Dosovitskiy et al.; Touvron et al.): the baseline of the same width
# is vit_<size><patch>.

_IMAGE = "LookupViT-{size}, lookup patch {p}, 224 px"


@register_variant("image", _IMAGE.format(size="Ti", p=16))
def lookupvit_ti16() -> LookupViTConfig:
    return LookupViTConfig(dim=192, depth=12, heads=3)


@register_variant("image", _IMAGE.format(size="S", p=16))
def lookupvit_s16() -> LookupViTConfig:
    return LookupViTConfig(dim=384, depth=12, heads=6)


@register_variant("image", _IMAGE.format(size="B", p=16))
def lookupvit_b16() -> LookupViTConfig:
    return LookupViTConfig(dim=768, depth=12, heads=12)


@register_variant("image", _IMAGE.format(size="L", p=16))
def lookupvit_l16() -> LookupViTConfig:
    return LookupViTConfig(dim=1024, depth=24, heads=16)


@register_variant("image", _IMAGE.format(size="B", p=8))
def lookupvit_b8() -> LookupViTConfig:
    return LookupViTConfig(dim=768, depth=12, heads=12, patch_size=8)


@register_variant("image", "LookupViT for tests and demos: 32 px, patch 4, 2 layers, width 64")
def lookupvit_tiny32() -> LookupViTConfig:
    return LookupViTConfig(
        image_size=32, patch_size=4, num_classes=10, dim=64, depth=2, heads=4,
        default_grids=((2, 2), (4, 4)),
    )


@register_variant(
    "image",
    "LookupViT trained on scikit-learn's handwritten digits (32 px grey, 8x8 lookup grid)",
    weights="lookupvit_digits.safetensors",
    dataset="digits",
)
def lookupvit_digits() -> LookupViTConfig:
    return LookupViTConfig(
        image_size=32, patch_size=4, in_chans=1, num_classes=10, dim=64, depth=4, heads=4,
        default_grids=((1, 1), (2, 2), (3, 3), (4, 4), (6, 6)),
        mean=(0.5,), std=(0.5,),
    )


# ---------------------------------------------------------------- variants: feature head
# Both normalised token streams, for detection or captioning heads built on top.


@register_variant("features", "LookupViT-B/16 backbone returning both token streams")
def lookupvit_b16_features() -> LookupViTConfig:
    return LookupViTConfig(dim=768, depth=12, heads=12, num_classes=0, head="features")


@register_variant("features", "tiny LookupViT backbone returning both token streams (tests)")
def lookupvit_tiny32_features() -> LookupViTConfig:
    return lookupvit_tiny32().replace(num_classes=0, head="features")


# ---------------------------------------------------------------- variants: video
# Tubelet embedding (t x p x p) and a 3-D compressed grid from a trilinear resize.


@register_variant("video", "LookupViT-B/16 video: 16 frames x 224 px, tubelet 2x16x16 (8x14x14)")
def lookupvit_b16_video() -> LookupViTConfig:
    return LookupViTConfig(
        dim=768, depth=12, heads=12, frames=16, tubelet=2, num_classes=400,
        default_grids=((4, 3, 3), (4, 5, 5), (4, 7, 7), (8, 7, 7)),
    )


@register_variant("video", "tiny LookupViT video for tests: 4 frames x 32 px, tubelet 2x4x4")
def lookupvit_tiny32_video() -> LookupViTConfig:
    return LookupViTConfig(
        image_size=32, patch_size=4, num_classes=10, dim=64, depth=2, heads=4,
        frames=4, tubelet=2, default_grids=((1, 2, 2), (2, 4, 4)),
    )
